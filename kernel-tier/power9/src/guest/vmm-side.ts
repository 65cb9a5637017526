import { receiveWithFds, sendWithFds, watchReadable } from "@vplane/host-kernel";
import { handoffFrame } from "@vplane/interrupt-controller/native";

/** A VMM's side of the handoff (docs/vmm-handoff.md): one framed message out, with its fds. */
export function sendToService(fd: number, message: unknown, fds: number[] = []): void {
  sendWithFds(fd, handoffFrame(message), fds);
}

/** The service's next message and its fds, or "closed". */
export function nextFromService(
  fd: number,
  timeoutMs = 10_000,
): Promise<{ message: Record<string, unknown>; fds: number[] } | "closed"> {
  return new Promise((resolve, reject) => {
    let pending = new Uint8Array(0);
    const fds: number[] = [];
    const timer = setTimeout(() => {
      watch.close();
      reject(new Error(`no message from the service within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (value: { message: Record<string, unknown>; fds: number[] } | "closed") => {
      clearTimeout(timer);
      watch.close();
      resolve(value);
    };
    const watch = watchReadable(fd, () => {
      for (let got = receiveWithFds(fd, 70_000, 8); got; got = receiveWithFds(fd, 70_000, 8)) {
        if (got.data.length === 0) return done("closed");
        const joined = new Uint8Array(pending.length + got.data.length);
        joined.set(pending);
        joined.set(got.data, pending.length);
        pending = joined;
        fds.push(...got.fds);
        const length = pending.length >= 4 ? new DataView(pending.buffer).getUint32(0) : Infinity;
        if (pending.length >= 4 + length) {
          return done({
            message: JSON.parse(new TextDecoder().decode(pending.subarray(4, 4 + length))) as Record<
              string,
              unknown
            >,
            fds,
          });
        }
      }
    });
  });
}
