import { EventSourceParserStream } from "eventsource-parser/stream";

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

/** The REST API over fetch: JSON in, JSON out, failures as ApiError with the error shape. */
export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, init);
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

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const response = await this.fetch(path, {
      method,
      headers: this.headers({
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      }),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    if (!response.ok) throw failure(response.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Reads a Server-Sent Events stream (parsed by eventsource-parser: multi-line data, comments,
   * retry fields) until it ends, `signal` aborts or it stays quiet for `idleMs`.
   */
  async *events(path: string, options: EventsOptions = {}): AsyncGenerator<ServerSentEvent> {
    const response = await this.fetch(path, {
      headers: this.headers({
        accept: "text/event-stream",
        ...(options.lastEventId ? { "last-event-id": options.lastEventId } : {}),
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!response.ok || !response.body) throw failure(response.status, await response.text());
    const reader = response.body
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

function failure(status: number, text: string): ApiError {
  let error: ApiErrorBody | undefined;
  try {
    error = (JSON.parse(text || "{}") as { error?: ApiErrorBody }).error;
  } catch {
    error = undefined;
  }
  return new ApiError(
    status,
    error ?? { code: "UNKNOWN", reason: `HTTP_${status}`, message: text.slice(0, 200), details: {} },
  );
}
