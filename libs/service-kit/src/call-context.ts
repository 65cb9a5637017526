import type { Metadata } from "@grpc/grpc-js";
import type { Logger } from "./logger.js";

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** Full method path, e.g. "/vplane.interrupt.v1.InterruptControllerService/GetCapabilities". */
  readonly method: string;
  /** The caller's x-request-id, or one made up for this call; stamped on every log line. */
  readonly requestId: string;
  /** Aborted when the caller cancels, the deadline passes, or the server is forced down. */
  readonly signal: AbortSignal;
  /** The call's deadline, if the caller set one. */
  readonly deadline: Date | undefined;
  readonly metadata: Metadata;
  /** Logger bound to this call (method, requestId). */
  readonly log: Logger;
}
