import { ModelError, type ModelErrorFields } from "@vplane/model-kit";
import type { StatusCodeName } from "./status-code.js";

/** VplaneError's fields: the device models' error shape (@vplane/model-kit) over every gRPC status name. */
export type VplaneErrorFields = ModelErrorFields<StatusCodeName> & {
  /** Facts beyond the models' fields, sent as ErrorInfo metadata (e.g. "destination"). */
  metadata?: Readonly<Record<string, string>> | undefined;
};

/**
 * The one typed error of vplane: what a handler, a backend or a model throws for a caller's
 * mistake or an unavailable resource. The service kit turns it into a gRPC status with a
 * google.rpc.Status in `grpc-status-details-bin` holding an ErrorInfo, a
 * vplane.common.v1.ErrorDetail and, when it names a field, a google.rpc.BadRequest (AIP-193), so
 * a client reads the code, a stable reason and the errno / H_* code the kernel or the hypervisor
 * would return, without parsing messages. It is the models' ModelError shape with any status name.
 */
export class VplaneError extends ModelError<StatusCodeName> {
  readonly metadata: Readonly<Record<string, string>> | undefined;

  constructor(fields: VplaneErrorFields) {
    super(fields);
    this.metadata = fields.metadata;
  }
}

/**
 * Errors thrown by the device models (XiveError, SmmuError, ...) carry the same fields without
 * importing this package (a model never imports a service library); recognise them by shape.
 */
export function isDeviceFault(error: unknown): error is Error & VplaneErrorFields {
  if (!(error instanceof Error)) return false;
  const e = error as Error & Partial<VplaneErrorFields>;
  return typeof e.code === "string" && typeof e.reason === "string";
}

/** Normalises anything thrown into a VplaneError; unknown errors become INTERNAL. */
export function toVplaneError(error: unknown): VplaneError {
  if (error instanceof VplaneError) return error;
  if (isDeviceFault(error)) return new VplaneError({ ...error, message: error.message });
  return new VplaneError({ code: "INTERNAL", reason: "INTERNAL", message: "internal error" });
}
