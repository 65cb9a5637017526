import type { StatusCodeName } from "./status-code.js";

/**
 * The one typed error of vplane: what a handler, a backend or a model throws for a caller's
 * mistake or an unavailable resource. The service kit turns it into a gRPC status with a
 * google.rpc.Status in `grpc-status-details-bin` holding an ErrorInfo and a
 * vplane.common.v1.ErrorDetail (AIP-193), so a client reads the code, a stable reason and the
 * errno / H_* code the kernel or the hypervisor would return, without parsing messages.
 */
export interface VplaneErrorFields {
  /** gRPC status name, e.g. "INVALID_ARGUMENT". */
  code: StatusCodeName;
  /** Stable machine-readable reason, UPPER_SNAKE_CASE, e.g. "PRIORITY_RESERVED". */
  reason: string;
  message: string;
  /** Positive Linux errno the kernel interface returns for the same input (EINVAL = 22). */
  errno?: number | undefined;
  /** PAPR hcall return code for the same input (H_P2 = -55). */
  hcallReturnCode?: number | undefined;
  /** Path of the offending request field, e.g. "sources[3].priority". */
  field?: string | undefined;
  /** For batches: index of the first failed entry; entries before it were applied. */
  batchIndex?: number | undefined;
}

export class VplaneError extends Error implements VplaneErrorFields {
  readonly code: StatusCodeName;
  readonly reason: string;
  readonly errno: number | undefined;
  readonly hcallReturnCode: number | undefined;
  readonly field: string | undefined;
  readonly batchIndex: number | undefined;

  constructor(fields: VplaneErrorFields) {
    super(fields.message);
    this.name = "VplaneError";
    this.code = fields.code;
    this.reason = fields.reason;
    this.errno = fields.errno;
    this.hcallReturnCode = fields.hcallReturnCode;
    this.field = fields.field;
    this.batchIndex = fields.batchIndex;
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
