/** gRPC status names a model error may carry (a subset of the service kit's StatusCodeName). */
export type XiveErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "ALREADY_EXISTS"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL";

export interface XiveErrorFields {
  code: XiveErrorCode;
  /** Stable UPPER_SNAKE_CASE reason, e.g. "PRIORITY_RESERVED". */
  reason: string;
  message: string;
  /** Positive errno the KVM device returns for the same input (EINVAL = 22). */
  errno?: number;
  /** PAPR return code for the same input (H_P2 = -55). */
  hcallReturnCode?: number;
  /** The offending input, e.g. "priority". */
  field?: string;
}

/**
 * A bad input or an unavailable resource in the XIVE/XICS model. It has the shape the service
 * kit recognises (`code`, `reason`, `errno?`, `hcallReturnCode?`, see isDeviceFault), so a
 * service turns it into a gRPC status without the model importing any service library.
 */
export class XiveError extends Error {
  readonly code: XiveErrorCode;
  readonly reason: string;
  readonly errno: number | undefined;
  readonly hcallReturnCode: number | undefined;
  readonly field: string | undefined;

  constructor(fields: XiveErrorFields) {
    super(fields.message);
    this.name = "XiveError";
    this.code = fields.code;
    this.reason = fields.reason;
    this.errno = fields.errno;
    this.hcallReturnCode = fields.hcallReturnCode;
    this.field = fields.field;
  }
}

/** Shorthand for the common case: a KVM ioctl-style failure with an errno. */
export function kvmError(
  errno: number,
  code: XiveErrorCode,
  reason: string,
  message: string,
  field?: string,
): XiveError {
  return new XiveError({ code, reason, message, errno, field });
}
