import { EventSourceParserStream } from "eventsource-parser/stream";
import { createGatewayClient, type GatewayClient } from "@vplane/gateway-client";

/** The gateway's error shape, as every non-2xx answer carries it. */
export interface ApiErrorBody {
  code: string;
  reason: string;
  message: string;
  details: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(`${body.code} ${body.reason}: ${body.message}`);
  }
}

export interface ServerSentEvent {
  id?: string;
  event: string;
  data: unknown;
}

export interface EventsOptions {
  /** Resume after this event id (sent as Last-Event-ID). */
  lastEventId?: string | undefined;
  signal?: AbortSignal | undefined;
  /** End the stream once no event has come for this long, in milliseconds (unset: never). */
  idleMs?: number | undefined;
}

/** What a call of the generated client settles to (openapi-fetch's FetchResponse, loosely). */
export interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** What an event-stream call is given: read the body as a stream, resume and abort as asked. */
export interface StreamInit {
  parseAs: "stream";
  headers: Record<string, string>;
  signal?: AbortSignal;
}

/** An event stream's call on the generated client, made with the init it is given. */
export type EventStreamCall = (init: StreamInit) => Promise<Answer<ReadableStream<Uint8Array> | null>>;

/**
 * The gateway's REST API through the client generated from its OpenAPI document
 * (@vplane/gateway-client): commands call `api.gateway.GET("/v1/vms/{vm}", ...)`, typed path by
 * path, and `api.call` turns the answer into its data or an ApiError with the error shape.
 */
export class ApiClient {
  readonly gateway: GatewayClient;

  constructor(
    private readonly baseUrl: string,
    token: string,
  ) {
    this.gateway = createGatewayClient({ baseUrl, ...(token ? { token } : {}) });
  }

  /** The answer's data; a failure (or an unreachable gateway) as ApiError. */
  async call<T>(pending: Promise<Answer<T>>): Promise<T> {
    const { data, error, response } = await this.reach(pending);
    if (!response.ok) throw failure(response.status, error);
    return data as T;
  }

  /** Any route, by method and path as a user typed them (`vplanectl api`): the answer as JSON. */
  raw(method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    // The path is whatever the user typed, so it is not one of the document's typed paths.
    const request = this.gateway.request as (
      method: string,
      path: string,
      init: { body?: unknown; headers: Record<string, string> },
    ) => Promise<Answer<unknown>>;
    return this.call(
      request(method.toLowerCase(), path, { ...(body !== undefined ? { body } : {}), headers }),
    );
  }

  /**
   * Reads a Server-Sent Events stream (parsed by eventsource-parser: multi-line data, comments,
   * retry fields) until it ends, `signal` aborts or it stays quiet for `idleMs`.
   */
  async *events(open: EventStreamCall, options: EventsOptions = {}): AsyncGenerator<ServerSentEvent> {
    const body = await this.call(
      open({
        parseAs: "stream",
        headers: {
          accept: "text/event-stream",
          ...(options.lastEventId ? { "last-event-id": options.lastEventId } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
    if (!body) return;
    const reader = body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
      .getReader();
    try {
      for (;;) {
        const next = await readWithin(reader, options.idleMs);
        if (next === "idle" || next.done) return;
        const { id, event, data } = next.value;
        yield { ...(id !== undefined ? { id } : {}), event: event ?? "message", data: parseData(data) };
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /** The call's answer; a network failure (no answer at all) as UNAVAILABLE GATEWAY_UNREACHABLE. */
  private async reach<T>(pending: Promise<Answer<T>>): Promise<Answer<T>> {
    try {
      return await pending;
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw new ApiError(0, {
        code: "UNAVAILABLE",
        reason: "GATEWAY_UNREACHABLE",
        message: `cannot reach ${this.baseUrl}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`,
        details: {},
      });
    }
  }
}

/** The next read, or "idle" when nothing arrived within `ms`. */
function readWithin<T>(
  reader: ReadableStreamDefaultReader<T>,
  ms: number | undefined,
): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<T>["read"]>> | "idle"> {
  if (ms === undefined) return reader.read();
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<"idle">((resolve) => (timer = setTimeout(() => resolve("idle"), ms)));
  return Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer));
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/** A failed answer as ApiError: the gateway's error shape, or what came instead of it. */
function failure(status: number, error: unknown): ApiError {
  const shaped = (error as { error?: ApiErrorBody } | undefined)?.error;
  if (shaped && typeof shaped === "object" && typeof shaped.code === "string")
    return new ApiError(status, shaped);
  const text = typeof error === "string" ? error : JSON.stringify(error ?? "");
  return new ApiError(status, {
    code: "UNKNOWN",
    reason: `HTTP_${status}`,
    message: text.slice(0, 200),
    details: {},
  });
}
