import {
  Metadata,
  status,
  type handleBidiStreamingCall,
  type handleClientStreamingCall,
  type ServerReadableStream,
  type handleServerStreamingCall,
  type ServerDuplexStream,
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { CallContext } from "./call-context.js";
import { CallScope, type AnyServerCall } from "./call-scope.js";
import { afterWrites } from "./after-writes.js";
import { toStatusObject } from "./error-details.js";
import type { Logger } from "./logger.js";
import type { RpcServerMetrics, RpcType } from "./rpc-server-metrics.js";
import { statusNameOf } from "./status-code.js";
import { VplaneError, toVplaneError } from "./vplane-error.js";

export type UnaryHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res> | Res;
export type ServerStreamHandler<Req, Res> = (
  request: Req,
  send: (message: Res) => Promise<void>,
  context: CallContext,
) => Promise<void>;

export type ClientStreamHandler<Req, Res> = (
  requests: AsyncIterable<Req>,
  context: CallContext,
) => Promise<Res>;

export type BidiStreamHandler<Req, Res> = (
  requests: AsyncIterable<Req>,
  send: (message: Res) => Promise<void>,
  context: CallContext,
) => Promise<void>;

/**
 * Adapts async handlers to grpc-js: one structured log line per call (method, duration, status,
 * request id) and the call counted in the RPC metrics, every thrown error mapped through the one
 * error model, and an AbortSignal that fires on cancellation or deadline so long work stops when
 * nobody waits for it.
 */
export class CallHandlers {
  private sequence = 0;
  private readonly bootId = Math.random().toString(36).slice(2, 8);
  private readonly activeStreams = new Set<CallScope>();

  constructor(
    private readonly log: Logger,
    private readonly metrics?: RpcServerMetrics,
  ) {}

  /**
   * Ends every open server stream with UNAVAILABLE (a shutdown started): streams are resumable
   * from a sequence number, so the client reconnects elsewhere instead of holding the drain.
   */
  drainStreams(): void {
    for (const scope of this.activeStreams) scope.abort("draining");
  }

  unary<Req, Res>(handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) =>
      this.answer(call, callback, "unary", (scope) => handler(call.request, scope));
  }

  /** A client stream: the handler reads the requests in order, then answers once, as unary does. */
  clientStream<Req, Res>(handler: ClientStreamHandler<Req, Res>): handleClientStreamingCall<Req, Res> {
    return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>) =>
      this.answer(call, callback, "client_stream", (scope) =>
        handler(untilAborted((call as AsyncIterable<Req>)[Symbol.asyncIterator](), scope.signal), scope),
      );
  }

  /** Runs a handler that answers once (unary, client stream) and sends its answer or error. */
  private answer<Res>(
    call: AnyServerCall,
    callback: sendUnaryData<Res>,
    type: RpcType,
    run: (scope: CallScope) => Promise<Res> | Res,
  ): void {
    const scope = this.scopeFor(call);
    // A sync handler's throw and an async handler's rejection take the same path.
    new Promise<Res>((resolve) => resolve(run(scope))).then(
      (response) => {
        scope.finish();
        if (scope.aborted) return; // grpc-js already ended the call (cancel or deadline)
        callback(null, response);
        this.recordCall(scope, type, status.OK);
      },
      (error: unknown) => {
        scope.finish();
        const failure = this.failure(scope, error);
        callback(failure);
        this.recordCall(scope, type, failure.code ?? status.UNKNOWN, error);
      },
    );
  }

  /**
   * A server stream. `headersFirst`: its response headers are handed over before the handler
   * runs, not with its first message (a handler that waits for them to leave, afterWrites, lets
   * the client read them before the time-critical part of its answer).
   */
  serverStream<Req, Res>(
    handler: ServerStreamHandler<Req, Res>,
    { headersFirst = false } = {},
  ): handleServerStreamingCall<Req, Res> {
    return (call: ServerWritableStream<Req, Res>) => {
      if (headersFirst) call.sendMetadata(new Metadata());
      this.stream(call, "server_stream", (send, scope) => handler(call.request, send, scope));
    };
  }

  /** A bidirectional stream: the handler reads requests as an async iterable, in order. */
  bidiStream<Req, Res>(handler: BidiStreamHandler<Req, Res>): handleBidiStreamingCall<Req, Res> {
    return (call: ServerDuplexStream<Req, Res>) =>
      this.stream(call, "bidi_stream", (send, scope) =>
        // destroyOnReturn false: for-await over the call itself destroys it once the client's
        // side ends, and a destroyed call can no longer send the handler's final status (the
        // client then waits until it cancels).
        handler(
          untilAborted(call.iterator({ destroyOnReturn: false }) as AsyncIterator<Req>, scope.signal),
          send,
          scope,
        ),
      );
  }

  /** Runs a streaming handler: drained streams end UNAVAILABLE, errors map through the model. */
  private stream<Res>(
    call: ServerWritableStream<unknown, Res> | ServerDuplexStream<unknown, Res>,
    type: RpcType,
    run: (send: (message: Res) => Promise<void>, scope: CallScope) => Promise<void>,
  ): void {
    const scope = this.scopeFor(call);
    this.activeStreams.add(scope);
    const end = (error?: unknown) => {
      scope.finish();
      this.activeStreams.delete(scope);
      if (scope.cause === "draining") {
        const draining = new VplaneError({
          code: "UNAVAILABLE",
          reason: "SERVER_DRAINING",
          message: "server is shutting down; resume the stream from its last sequence number",
        });
        call.emit("error", this.failure(scope, draining));
        return this.recordCall(scope, type, status.UNAVAILABLE);
      }
      if (scope.aborted) return this.recordCall(scope, type, status.CANCELLED);
      if (error === undefined) {
        call.end();
        return this.recordCall(scope, type, status.OK);
      }
      const failure = this.failure(scope, error);
      call.emit("error", failure);
      this.recordCall(scope, type, failure.code ?? status.UNKNOWN, error);
    };
    // A handler that throws synchronously takes the same path as one that rejects.
    new Promise<void>((resolve) => resolve(run((message) => this.send(call, scope, message), scope))).then(
      () => end(),
      (error: unknown) => end(error ?? new Error("stream handler failed")),
    );
  }

  /** Writes one message, waiting for 'drain' when grpc-js's buffer is full (back-pressure). */
  private send<Res>(
    call: ServerWritableStream<unknown, Res> | ServerDuplexStream<unknown, Res>,
    scope: CallScope,
    message: Res,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = scope.signal;
      if (signal.aborted) return reject(new Error("stream ended"));
      if (call.write(message)) return resolve();
      const onDrain = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        call.off("drain", onDrain);
        reject(new Error("stream ended"));
      };
      call.once("drain", onDrain);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  private scopeFor(call: AnyServerCall): CallScope {
    const given = call.metadata.get("x-request-id")[0];
    const requestId =
      typeof given === "string" && given.length > 0 ? given : `${this.bootId}-${++this.sequence}`;
    return new CallScope(call, requestId, this.log);
  }

  private failure(scope: CallScope, error: unknown) {
    const vplaneError = toVplaneError(error);
    if (vplaneError.code === "INTERNAL") scope.log.error({ err: error }, "handler failed");
    return { ...toStatusObject(vplaneError), name: "VplaneError", message: vplaneError.message };
  }

  /**
   * Counts and logs the call once its answer has left (afterWrites): written at once, the log line
   * would hold the answer back by its own cost (in a migration's stop on a busy host, 1.3-2.5 ms
   * between a StopAndCopy's last chunk and its write; issue 14). The duration is taken now.
   */
  private recordCall(scope: CallScope, type: RpcType, code: number, error?: unknown): void {
    if (!this.log.isLevelEnabled("info") && !this.metrics) return;
    const durationUs = Number((process.hrtime.bigint() - scope.started) / 1000n);
    void afterWrites().then(() => this.writeCallRecord(scope, type, code, durationUs, error));
  }

  private writeCallRecord(
    scope: CallScope,
    type: RpcType,
    code: number,
    durationUs: number,
    error?: unknown,
  ) {
    const logged = this.log.isLevelEnabled("info");
    const statusName = statusNameOf(code);
    this.metrics?.record(scope.method, type, statusName, durationUs / 1e6);
    if (!logged) return;
    const fields: Record<string, unknown> = {
      method: scope.method,
      requestId: scope.requestId,
      durationMs: durationUs / 1000,
      status: statusName,
    };
    if (error instanceof Error && code !== (status.OK as number)) fields["error"] = error.message;
    this.log.info(fields, "call");
  }
}

/**
 * The requests of a bidirectional stream, ending with the abort reason when the call is
 * cancelled or drained (grpc-js leaves a cancelled call's readable side open).
 */
async function* untilAborted<T>(iterator: AsyncIterator<T>, signal: AbortSignal): AsyncIterable<T> {
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(signal.reason instanceof Error ? signal.reason : new Error("call ended"));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => undefined); // observed through the race below
  for (;;) {
    const next = await Promise.race([iterator.next(), aborted]);
    if (next.done) return;
    yield next.value;
  }
}
