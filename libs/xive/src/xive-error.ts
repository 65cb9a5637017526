import { ModelError, type ModelErrorCode, type ModelErrorFields } from "@vplane/model-kit";

export type XiveErrorCode = ModelErrorCode;
export type XiveErrorFields = ModelErrorFields;

/**
 * A bad input or an unavailable resource in the XIVE/XICS model: the models' shared error shape
 * (@vplane/model-kit's ModelError: gRPC code name, reason, errno, hcall return code, field),
 * named for this model.
 */
export class XiveError extends ModelError {}

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
