import type {
  Metadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
} from "@grpc/grpc-js";
import type { CallContext } from "./call-context.js";
import type { Logger } from "./logger.js";

export type AnyServerCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerReadableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

/** Why a call's signal fired: the caller went away, or the server is draining its streams. */
export type AbortCause = "cancelled" | "draining";

/**
 * The per-call state behind a CallContext. The AbortController is made only when a handler asks
 * for the signal (constructing one costs microseconds, and most unary handlers never look), and
 * a call cancelled before that gets an already-aborted signal.
 */
export class CallScope implements CallContext {
  readonly method: string;
  readonly requestId: string;
  readonly metadata: Metadata;
  readonly deadline: Date | undefined;
  readonly started = process.hrtime.bigint();
  cause: AbortCause | undefined;
  private controller: AbortController | undefined;
  private callLog: Logger | undefined;
  private readonly onCancel = () => this.abort("cancelled");

  constructor(
    private readonly call: AnyServerCall,
    requestId: string,
    private readonly parentLog: Logger,
  ) {
    this.method = call.getPath();
    this.requestId = requestId;
    this.metadata = call.metadata;
    const deadline = call.getDeadline();
    this.deadline =
      deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined;
    // Every grpc-js server call is an EventEmitter that emits "cancelled".
    (call as { once(event: "cancelled", listener: () => void): unknown }).once("cancelled", this.onCancel);
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.cause && !this.controller.signal.aborted) this.controller.abort(new Error(`call ${this.cause}`));
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.cause !== undefined;
  }

  get log(): Logger {
    return (this.callLog ??= this.parentLog.child({ method: this.method, requestId: this.requestId }));
  }

  abort(cause: AbortCause): void {
    if (this.cause) return;
    this.cause = cause;
    this.controller?.abort(new Error(`call ${cause}`));
  }

  /** The handler is done: stop listening for cancellation. */
  finish(): void {
    this.call.off("cancelled", this.onCancel);
  }
}
