import type { FastifyReply, FastifyRequest } from "fastify";

/** The most of an oversized body read (and thrown away) so that its sender reads the 413. */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;
/** How long an oversized body may take to arrive before the connection is cut anyway. */
const DISCARD_LIMIT_MS = 10_000;

/**
 * A body over the limit is refused with 413 before it has arrived. fastify then answers with
 * `connection: close`, and Node closes the socket while the client is still sending: the peer's
 * kernel answers the rest with a reset, which discards the 413 the client had not read yet
 * (fetch saw a reset in 12-31 of 40 tries with a 10 MB body). Instead the connection stays open
 * and the rest of the body is read and thrown away, up to DISCARD_LIMIT_BYTES and
 * DISCARD_LIMIT_MS (like nginx's lingering close); past either the socket is closed after all.
 */
export function discardRestOfBody(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw;
  if (raw.complete) return;
  void reply.removeHeader("connection");
  let discarded = 0;
  const cut = () => raw.socket?.destroy();
  const timer = setTimeout(cut, DISCARD_LIMIT_MS).unref();
  const done = () => clearTimeout(timer);
  raw.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT_BYTES) {
      done();
      cut();
    }
  });
  raw.once("end", done);
  raw.once("close", done);
  raw.resume();
}
