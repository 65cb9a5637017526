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

/** The REST API over fetch: JSON in, JSON out, failures as ApiError with the error shape. */
export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: this.headers({
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        }),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new ApiError(0, {
        code: "UNAVAILABLE",
        reason: "GATEWAY_UNREACHABLE",
        message: `cannot reach ${this.baseUrl}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`,
        details: {},
      });
    }
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) {
      const error = (parsed as { error?: ApiErrorBody } | undefined)?.error;
      throw new ApiError(
        response.status,
        error ?? {
          code: "UNKNOWN",
          reason: `HTTP_${response.status}`,
          message: text.slice(0, 200),
          details: {},
        },
      );
    }
    return parsed as T;
  }

  /** Reads a Server-Sent Events stream until it ends or `signal` aborts, resuming from lastEventId. */
  async *events(
    path: string,
    options: { lastEventId?: string; signal?: AbortSignal } = {},
  ): AsyncGenerator<ServerSentEvent> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      headers: this.headers({
        accept: "text/event-stream",
        ...(options.lastEventId ? { "last-event-id": options.lastEventId } : {}),
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!response.ok || !response.body) {
      const text = await response.text();
      const error = (JSON.parse(text || "{}") as { error?: ApiErrorBody }).error;
      throw new ApiError(
        response.status,
        error ?? { code: "UNKNOWN", reason: "SSE_FAILED", message: text, details: {} },
      );
    }
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let split = buffer.indexOf("\n\n"); split >= 0; split = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, split);
        buffer = buffer.slice(split + 2);
        const event: ServerSentEvent = { event: "message", data: undefined };
        let fields = 0;
        for (const line of block.split("\n")) {
          if (line === "" || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).trimStart();
          fields++;
          if (name === "id") event.id = value;
          else if (name === "event") event.event = value;
          else if (name === "data") event.data = JSON.parse(value);
        }
        if (fields > 0) yield event;
      }
    }
  }
}
