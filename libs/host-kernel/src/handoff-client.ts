import { watchReadable } from "./fd-watch.js";
import { frameLength, handoffFrame, parseHandoffMessage, type HandoffMessage } from "./handoff-framing.js";
import { MAX_FDS_PER_MESSAGE, receiveWithFds, sendWithFds } from "./unix-socket.js";

// A VMM's side of a handoff socket (docs/vmm-handoff.md), on a connection from connectUnix: what
// the kernel tiers' guests and the services' tests use to play the VMM.

/** Sends one message, and `fds` with it. */
export function sendHandoffMessage(fd: number, message: unknown, fds: readonly number[] = []): void {
  sendWithFds(fd, handoffFrame(message), fds);
}

/**
 * The service's next message and the fds that came with it, or "closed" when the service closed
 * the connection. Reads exactly one frame (its header, then its length), so a message that
 * follows stays in the socket for the next call.
 */
export function nextHandoffMessage(
  fd: number,
  timeoutMs = 10_000,
): Promise<{ message: HandoffMessage; fds: number[] } | "closed"> {
  return new Promise((resolve, reject) => {
    let frame = new Uint8Array(4);
    let have = 0;
    let header = true;
    const fds: number[] = [];
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      watch.close();
      settle();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no message from the service within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const watch = watchReadable(fd, () => {
      try {
        for (
          let got = receiveWithFds(fd, frame.length - have, MAX_FDS_PER_MESSAGE);
          got;
          got = receiveWithFds(fd, frame.length - have, MAX_FDS_PER_MESSAGE)
        ) {
          if (got.data.length === 0) return finish(() => resolve("closed"));
          frame.set(got.data, have);
          have += got.data.length;
          fds.push(...got.fds);
          if (have < frame.length) continue;
          if (!header) {
            const message = parseHandoffMessage(frame);
            return finish(() => resolve({ message, fds }));
          }
          header = false;
          frame = new Uint8Array(frameLength(frame));
          have = 0;
          if (frame.length === 0) parseHandoffMessage(frame); // refuses the empty message
        }
      } catch (error) {
        finish(() => reject(error instanceof Error ? error : new Error(String(error))));
      }
    });
  });
}
