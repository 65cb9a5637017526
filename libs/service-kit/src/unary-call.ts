import { Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { fromServiceError } from "./error-details.js";

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface UnaryCallOptions {
  /** Milliseconds from now; every vplane client call should set one. */
  timeoutMs?: number;
  requestId?: string;
  signal?: AbortSignal;
  metadata?: Metadata;
}

/** Calls a ts-proto grpc-js client method as a promise; failures reject with a VplaneError. */
export function unaryCall<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: UnaryCallOptions = {},
): Promise<Res> {
  const metadata = options.metadata ?? new Metadata();
  if (options.requestId) metadata.set("x-request-id", options.requestId);
  const callOptions: Partial<CallOptions> = {};
  if (options.timeoutMs !== undefined) callOptions.deadline = Date.now() + options.timeoutMs;
  return new Promise<Res>((resolve, reject) => {
    const call = method(request, metadata, callOptions, (error, response) => {
      options.signal?.removeEventListener("abort", cancel);
      if (error) reject(fromServiceError(error));
      else resolve(response);
    });
    const cancel = () => call.cancel();
    options.signal?.addEventListener("abort", cancel, { once: true });
  });
}
