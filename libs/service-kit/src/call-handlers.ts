import {
  status,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { Logger } from "./logger.js";
import type { CallContext } from "./call-context.js";
import { toStatusObject } from "./error-details.js";
import { statusNameOf } from "./status-code.js";
import { VplaneError, toVplaneError } from "./vplane-error.js";

const DRAINING = new Error("server draining");

export type UnaryHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res> | Res;
export type ServerStreamHandler<Req, Res> = (
  request: Req,
  send: (message: Res) => Promise<void>,
  context: CallContext,
) => Promise<void>;

type AnyServerCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

/**
 * Adapts async handlers to grpc-js: one structured log line per call (method, duration, status,
 * request id), every thrown error mapped through the one error model, and an AbortSignal that
 * fires on cancellation or deadline so long work stops when nobody waits for it.
 */
export class CallHandlers {
  private sequence = 0;
  private readonly bootId = Math.random().toString(36).slice(2, 8);
  private readonly activeStreams = new Set<AbortController>();

  constructor(private readonly log: Logger) {}

  /**
   * Ends every open server stream with UNAVAILABLE (a shutdown started): streams are resumable
   * from a sequence number, so the client reconnects elsewhere instead of holding the drain.
   */
  drainStreams(): void {
    for (const controller of this.activeStreams) controller.abort(DRAINING);
  }

  unary<Req, Res>(handler: UnaryHandler<Req, Res>): handleUnaryCall<Req, Res> {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const started = process.hrtime.bigint();
      const { context, finish } = this.contextFor(call as AnyServerCall);
      let result: Promise<Res>;
      try {
        result = Promise.resolve(handler(call.request, context));
      } catch (error) {
        result = Promise.reject(error);
      }
      result.then(
        (response) => {
          finish();
          if (context.signal.aborted) return; // grpc-js already ended the call
          callback(null, response);
          this.logCall(context, started, status.OK);
        },
        (error: unknown) => {
          finish();
          const failure = this.failure(context, error);
          callback(failure);
          this.logCall(context, started, failure.code ?? status.UNKNOWN, error);
        },
      );
    };
  }

  serverStream<Req, Res>(handler: ServerStreamHandler<Req, Res>): handleServerStreamingCall<Req, Res> {
    return (call: ServerWritableStream<Req, Res>) => {
      const started = process.hrtime.bigint();
      const { context, finish, controller } = this.contextFor(call as AnyServerCall);
      this.activeStreams.add(controller);
      const done = () => {
        this.activeStreams.delete(controller);
        finish();
      };
      // Back-pressure: wait for 'drain' when grpc-js's buffer is full.
      const send = (message: Res): Promise<void> =>
        new Promise((resolve, reject) => {
          if (context.signal.aborted) return reject(new Error("stream cancelled"));
          if (call.write(message)) return resolve();
          const onDrain = () => {
            context.signal.removeEventListener("abort", onAbort);
            resolve();
          };
          const onAbort = () => {
            call.off("drain", onDrain);
            reject(new Error("stream cancelled"));
          };
          call.once("drain", onDrain);
          context.signal.addEventListener("abort", onAbort, { once: true });
        });
      handler(call.request, send, context).then(
        () => {
          done();
          if (context.signal.reason === DRAINING)
            return this.endDraining(call as AnyServerCall, context, started);
          if (!context.signal.aborted) call.end();
          this.logCall(context, started, context.signal.aborted ? status.CANCELLED : status.OK);
        },
        (error: unknown) => {
          done();
          if (context.signal.reason === DRAINING)
            return this.endDraining(call as AnyServerCall, context, started);
          if (context.signal.aborted) {
            this.logCall(context, started, status.CANCELLED);
            return;
          }
          const failure = this.failure(context, error);
          call.emit("error", failure);
          this.logCall(context, started, failure.code ?? status.UNKNOWN, error);
        },
      );
    };
  }

  private endDraining(call: AnyServerCall, context: CallContext, started: bigint): void {
    const failure = this.failure(
      context,
      new VplaneError({
        code: "UNAVAILABLE",
        reason: "SERVER_DRAINING",
        message: "server is shutting down; resume the stream",
      }),
    );
    call.emit("error", failure);
    this.logCall(context, started, status.UNAVAILABLE);
  }

  private contextFor(call: AnyServerCall): {
    context: CallContext;
    finish: () => void;
    controller: AbortController;
  } {
    const method = call.getPath();
    const given = call.metadata.get("x-request-id")[0];
    const requestId =
      typeof given === "string" && given.length > 0 ? given : `${this.bootId}-${++this.sequence}`;
    const controller = new AbortController();
    const onCancel = () => controller.abort(new Error("call cancelled"));
    call.once("cancelled", onCancel);
    const deadline = call.getDeadline();
    const deadlineDate =
      deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined;
    const context: CallContext = {
      method,
      requestId,
      signal: controller.signal,
      deadline: deadlineDate,
      metadata: call.metadata,
      log: this.log.child({ method, requestId }),
    };
    return { context, finish: () => call.off("cancelled", onCancel), controller };
  }

  private failure(context: CallContext, error: unknown) {
    const vplaneError = toVplaneError(error);
    if (vplaneError.code === "INTERNAL") context.log.error({ err: error }, "handler failed");
    return { ...toStatusObject(vplaneError), name: "VplaneError", message: vplaneError.message };
  }

  private logCall(context: CallContext, started: bigint, code: number, error?: unknown): void {
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    const fields = {
      method: context.method,
      requestId: context.requestId,
      durationMs: Math.round(durationMs * 1000) / 1000,
      status: statusNameOf(code),
      ...(error instanceof Error && code !== status.OK ? { error: error.message } : {}),
    };
    this.log.info(fields, "call");
  }
}
