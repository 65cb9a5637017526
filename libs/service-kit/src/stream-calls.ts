// Client sides of the streaming calls, as unaryCall is for unary ones: deadlines, cancel through
// an AbortSignal, back-pressure, and failures as VplaneErrors.
import {
  Metadata,
  type CallOptions,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { fromServiceError } from "./error-details.js";
import type { UnaryCallOptions } from "./unary-call.js";

type ServerStreamMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
) => ClientReadableStream<Res>;

type ClientStreamMethod<Req, Res> = (
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientWritableStream<Req>;

function callSetup(options: UnaryCallOptions): { metadata: Metadata; callOptions: Partial<CallOptions> } {
  const metadata = options.metadata ?? new Metadata();
  if (options.requestId) metadata.set("x-request-id", options.requestId);
  const callOptions: Partial<CallOptions> = {};
  if (options.timeoutMs !== undefined) callOptions.deadline = Date.now() + options.timeoutMs;
  return { metadata, callOptions };
}

/** The messages of a server stream, in order; a failed stream throws its VplaneError. */
export async function* serverStreamCall<Req, Res>(
  method: ServerStreamMethod<Req, Res>,
  request: Req,
  options: UnaryCallOptions = {},
): AsyncIterable<Res> {
  const { metadata, callOptions } = callSetup(options);
  const call = method(request, metadata, callOptions);
  const cancel = () => call.cancel();
  options.signal?.addEventListener("abort", cancel, { once: true });
  let ended = false;
  try {
    for await (const message of call as AsyncIterable<Res>) yield message;
    ended = true;
  } catch (error) {
    throw "code" in (error as object) ? fromServiceError(error as ServiceError) : error;
  } finally {
    options.signal?.removeEventListener("abort", cancel);
    // Stops the stream when the reader gave up early. Not after its end: a cancel then changes
    // nothing, but still runs down grpc-js's layers (the stop's StopAndCopy streams end inside
    // the downtime, issue 14).
    if (!ended) call.cancel();
  }
}

/** An open client stream: write in order (waiting while grpc-js buffers), then finish for the answer. */
export class ClientStreamCall<Req, Res> {
  private readonly answer: Promise<Res>;
  private readonly call: ClientWritableStream<Req>;

  constructor(method: ClientStreamMethod<Req, Res>, options: UnaryCallOptions = {}) {
    const { metadata, callOptions } = callSetup(options);
    let call!: ClientWritableStream<Req>;
    this.answer = new Promise<Res>((resolve, reject) => {
      call = method(metadata, callOptions, (error, response) => {
        options.signal?.removeEventListener("abort", cancel);
        if (error) reject(fromServiceError(error));
        else resolve(response);
      });
    });
    this.answer.catch(() => undefined); // observed by finish(); a write may fail first
    this.call = call;
    const cancel = () => call.cancel();
    options.signal?.addEventListener("abort", cancel, { once: true });
  }

  /** Sends one message; resolves once grpc-js can take the next (rejects if the call failed). */
  async write(message: Req): Promise<void> {
    if (this.call.write(message)) return;
    await Promise.race([new Promise<void>((resolve) => this.call.once("drain", resolve)), this.answer]);
  }

  /** Half-closes the stream and waits for the answer. */
  finish(): Promise<Res> {
    this.call.end();
    return this.answer;
  }

  cancel(): void {
    this.call.cancel();
  }
}
