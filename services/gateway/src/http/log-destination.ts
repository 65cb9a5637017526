import pino from "pino";

/** A busy replica's log lines leave together, in writes of at least this many bytes... */
const WRITE_BYTES = 4096;
/** ...or this late at most, when fewer lines came. */
const FLUSH_MS = 100;

/**
 * The gateway's operational log on standard output, its lines gathered into few writes: one
 * write per request line cost a busy replica measurably (see the commit that made this). Still
 * one JSON line per call. pino writes what is held when the process exits (a crash included);
 * a kill -9 loses at most the last FLUSH_MS of lines.
 *
 * The flush timer is ours, not sonic-boom's periodicFlush: that one writes every FLUSH_MS even
 * with nothing held (an empty fs.write through the thread pool, 10 a second in an idle gateway).
 * Ours flushes only while bytes are held: counted as lines come, discounted as writes complete.
 */
export function gatewayLogDestination(fd = 1): pino.DestinationStream {
  const file = pino.destination({ fd, sync: false, minLength: WRITE_BYTES });
  let heldBytes = 0;
  file.on("write", (written: number) => (heldBytes -= written));
  // A flush while a write is under way does nothing: the next tick tries again.
  setInterval(() => heldBytes > 0 && file.flush(), FLUSH_MS).unref();
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
