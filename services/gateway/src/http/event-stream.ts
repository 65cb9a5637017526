import type { FastifyReply, FastifyRequest } from "fastify";
import { VplaneError } from "@vplane/service-kit";

/** Seconds between SSE comment lines that keep proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

export interface EventStream {
  /** One SSE event; `id` is what the client sends back as Last-Event-ID to resume. */
  send(event: { id?: number | string; event: string; data: unknown }): void;
  end(): void;
  /** Resolves when the client goes away or end() was called. */
  readonly closed: Promise<void>;
}

/**
 * The position a client resumes from: the Last-Event-ID header (what EventSource sends), else
 * ?lastEventId (schema-checked); 0 when neither is sent. A header that is not a decimal integer
 * in 0..2^53-1 is INVALID_ARGUMENT naming it, never read as some other position.
 */
export function lastEventIdOf(request: FastifyRequest): number {
  const header = request.headers["last-event-id"];
  if (header === undefined) return (request.query as { lastEventId?: number }).lastEventId ?? 0;
  const text = Array.isArray(header) ? header.join(",") : header;
  const n = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(n)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "BAD_LAST_EVENT_ID",
      message: `Last-Event-ID must be an event id this stream sent (a decimal integer 0..${Number.MAX_SAFE_INTEGER}); got ${JSON.stringify(text.slice(0, 40))}`,
      field: "Last-Event-ID",
    });
  }
  return n;
}

/**
 * A stream route's 200 response: text/event-stream, declared for that status alone. Its errors
 * stay plain JSON schemas, which the OpenAPI document gives application/json: they are JSON
 * error bodies, sent before the stream opens (a device stream's later error is an `error`
 * event in the stream). A route-wide `produces` would declare them text/event-stream too.
 */
export function eventStreamResponse(description: string) {
  return { description, content: { "text/event-stream": { schema: { type: "string" } } } };
}

const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/**
 * The answer to HEAD on a stream route (fastify gives every GET route a HEAD): the headers a GET
 * would get, at once, with no stream behind them (a HEAD that opened one would never answer).
 */
export function answerStreamHead(reply: FastifyReply): FastifyReply {
  return reply.code(200).headers(STREAM_HEADERS).send();
}

/**
 * The open streams of one gateway, so that closing the gateway ends them (a hijacked reply is
 * outside fastify's bookkeeping and would otherwise hold the close).
 */
export class EventStreams {
  private readonly open = new Set<EventStream>();

  start(request: FastifyRequest, reply: FastifyReply): EventStream {
    const stream = openEventStream(request, reply);
    this.open.add(stream);
    void stream.closed.then(() => this.open.delete(stream));
    return stream;
  }

  endAll(): void {
    for (const stream of this.open) stream.end();
  }
}

/**
 * Turns the reply into a Server-Sent Events stream (text/event-stream): the response leaves
 * fastify's serializer, so the route writes events until it ends the stream or the client leaves.
 */
export function openEventStream(request: FastifyRequest, reply: FastifyReply): EventStream {
  void reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { ...STREAM_HEADERS, connection: "keep-alive", "x-request-id": String(request.id) });
  raw.write(": stream open\n\n");
  let open = true;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  const heartbeat = setInterval(() => open && raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
  const close = () => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    markClosed();
  };
  request.raw.on("close", close);
  raw.on("close", close);
  return {
    send({ id, event, data }) {
      if (!open) return;
      const lines = JSON.stringify(data);
      raw.write(`${id !== undefined ? `id: ${id}\n` : ""}event: ${event}\ndata: ${lines}\n\n`);
    },
    end() {
      if (open) raw.end();
      close();
    },
    closed,
  };
}
