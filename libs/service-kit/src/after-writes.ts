/**
 * Resolves once the gRPC messages this turn of the event loop handed over have gone to their
 * sockets: Node's HTTP/2 session writes them in the turn's check phase (a native SetImmediate,
 * run before the immediates queued from JavaScript), after whatever else the turn still runs.
 * Work that need not delay them (a log line, bookkeeping) waits for this (issue 14).
 */
export function afterWrites(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
