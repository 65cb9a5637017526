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
 */
export function gatewayLogDestination(): pino.DestinationStream {
  return pino.destination({ fd: 1, sync: false, minLength: WRITE_BYTES, periodicFlush: FLUSH_MS });
}
