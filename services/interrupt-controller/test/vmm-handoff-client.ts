// A VMM's side of the handoff protocol (docs/vmm-handoff.md), for the tests: frames, sends fds,
// waits for answers.
import { receiveWithFds, sendWithFds, watchReadable } from "@vplane/host-kernel";
import { handoffFrame } from "../src/native-vmm-handoff.js";

export function sendFrame(fd: number, message: unknown, fds: number[] = []): void {
  sendWithFds(fd, handoffFrame(message), fds);
}

/** The next message (and its fds) from the service, or "closed" when it closed the connection. */
export function nextFrame(
  fd: number,
  timeoutMs = 5000,
): Promise<{ message: Record<string, unknown>; fds: number[] } | "closed"> {
  return new Promise((resolve, reject) => {
    let pending = new Uint8Array(0);
    const fds: number[] = [];
    const timer = setTimeout(() => {
      watch.close();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const watch = watchReadable(fd, () => {
      for (let got = receiveWithFds(fd, 70_000, 8); got; got = receiveWithFds(fd, 70_000, 8)) {
        if (got.data.length === 0) {
          clearTimeout(timer);
          watch.close();
          return resolve("closed");
        }
        const joined = new Uint8Array(pending.length + got.data.length);
        joined.set(pending);
        joined.set(got.data, pending.length);
        pending = joined;
        fds.push(...got.fds);
        if (pending.length >= 4) {
          const length = new DataView(pending.buffer).getUint32(0);
          if (pending.length >= 4 + length) {
            clearTimeout(timer);
            watch.close();
            return resolve({
              message: JSON.parse(new TextDecoder().decode(pending.subarray(4, 4 + length))) as Record<
                string,
                unknown
              >,
              fds,
            });
          }
        }
      }
    });
  });
}
