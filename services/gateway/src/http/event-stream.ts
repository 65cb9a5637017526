import type { FastifyReply, FastifyRequest } from "fastify";

/** Seconds between SSE comment lines that keep proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

export interface EventStream {
  /** One SSE event; `id` is what the client sends back as Last-Event-ID to resume. */
  send(event: { id?: number | string; event: string; data: unknown }): void;
  end(): void;
  /** Resolves when the client goes away or end() was called. */
  readonly closed: Promise<void>;
}

/** The position a client resumes from: the Last-Event-ID header (what EventSource sends), else ?lastEventId. */
export function lastEventIdOf(request: FastifyRequest): number {
  const header = request.headers["last-event-id"];
  const raw =
    (Array.isArray(header) ? header[0] : header) ?? (request.query as { lastEventId?: unknown }).lastEventId;
  const n = Number(raw);
  return raw !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : 0;
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
  raw.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "x-request-id": String(request.id),
  });
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
