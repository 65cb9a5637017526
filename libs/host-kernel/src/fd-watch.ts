import { requireLibc } from "./libc.js";

/** Stops a watch; idempotent. */
export interface FdWatch {
  close(): void;
}

interface PollHandle {
  close(): void;
  unref(): void;
}
type PollEvents = { readable: boolean; writable: boolean; disconnect: boolean };
type Poll = (
  fd: number,
  options: { readable: boolean; disconnect: boolean },
  callback: (status: number, events: PollEvents) => void,
) => PollHandle;

const open = new Set<FdWatch>();
let closeAtExit = false;

/**
 * Calls `onEvent` on Node's event loop whenever `fd` is readable or its peer hung up (libuv's
 * uv_poll, through koffi.node.poll: an fd Node did not open has no other way onto the loop).
 * koffi marks that API as not yet documented: its callback receives (status, events), not the
 * events alone as its index.d.ts says, hence the local type; koffi is pinned to 3.3.4.
 * `status` < 0 is a libuv error (the fd is no longer pollable). Like a listening net.Server, a
 * watch keeps the process alive unless `keepAlive` is false. Watches still open when the process
 * exits are closed first: a poll callback run while Node tears the loop down aborts the process.
 */
export function watchReadable(
  fd: number,
  onEvent: (event: { readable: boolean; hangUp: boolean; status: number }) => void,
  options: { keepAlive?: boolean } = {},
): FdWatch {
  const poll = requireLibc().koffi.node.poll as unknown as Poll;
  let handle: PollHandle | undefined = poll(fd, { readable: true, disconnect: true }, (status, events) =>
    onEvent({ readable: events.readable, hangUp: events.disconnect, status }),
  );
  if (options.keepAlive === false) handle.unref();
  const watch: FdWatch = {
    close() {
      handle?.close();
      handle = undefined;
      open.delete(watch);
    },
  };
  open.add(watch);
  if (!closeAtExit) {
    closeAtExit = true;
    process.once("exit", () => [...open].forEach((w) => w.close()));
  }
  return watch;
}
