import pino from "pino";

/** A busy replica's log lines leave together, in writes of at least this many bytes... */
const WRITE_BYTES = 4096;
/** ...or this late at most, when fewer lines came. */
const FLUSH_MS = 100;

/**
 * The gateway's operational log on standard output, its lines gathered into few writes: one
 * write per request line cost a busy replica measurably (see the commit that made this). Still
 * one JSON line per call. The writes are the process's own write(2) calls (as Node's own
 * process.stdout makes them to a pipe or a file): an asynchronous write's hand-off to the thread
 * pool and back cost a busy replica more. What is held is written when the process exits (a
 * crash included); a kill -9 loses at most the last FLUSH_MS of lines.
 *
 * The flush timer flushes only while bytes are held: sonic-boom's periodicFlush writes every
 * FLUSH_MS even with nothing held (10 empty writes a second in an idle gateway).
 */
export function gatewayLogDestination(fd = 1): pino.DestinationStream {
  const file = pino.destination({ fd, sync: true, minLength: WRITE_BYTES });
  let heldBytes = 0;
  file.on("write", (written: number) => (heldBytes -= written));
  const flushHeld = () => heldBytes > 0 && file.flush();
  setInterval(flushHeld, FLUSH_MS).unref();
  // pino flushes an asynchronous destination on exit, not a synchronous one: this one does.
  process.on("exit", flushHeld);
  return {
    write(line: string) {
      heldBytes += Buffer.byteLength(line);
      return file.write(line);
    },
    // pino's logger.flush() (main.ts, before it exits) reaches the file through this.
    flush(done?: (error?: Error) => void) {
      file.flush(done);
    },
  } as pino.DestinationStream;
}
