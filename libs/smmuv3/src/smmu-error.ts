import { Errno, ModelError, type ModelErrorCode, type ModelErrorFields } from "@vplane/model-kit";

export { Errno };
export type SmmuErrorCode = ModelErrorCode;
export type SmmuErrorInit = ModelErrorFields;

/**
 * The one error type the SMMU model throws: the models' shared error shape (@vplane/model-kit's
 * ModelError: gRPC code name, reason, errno, field, batch index), named for this model.
 * Translation faults are not errors: they come back as a result carrying the event record.
 */
export class SmmuError extends ModelError {}

/** INVALID_ARGUMENT, EINVAL unless told: the commonest refusal of the kernel interfaces. */
export function invalidArgument(
  reason: string,
  message: string,
  field?: string,
  errno: number = Errno.EINVAL,
): SmmuError {
  return new SmmuError({ code: "INVALID_ARGUMENT", reason, message, field, errno });
}

export function notFound(reason: string, message: string, field?: string, errno: number = Errno.ENOENT) {
  return new SmmuError({ code: "NOT_FOUND", reason, message, field, errno });
}

export function alreadyExists(reason: string, message: string, field?: string) {
  return new SmmuError({ code: "ALREADY_EXISTS", reason, message, field, errno: Errno.EEXIST });
}

export function resourceExhausted(reason: string, message: string, errno: number = Errno.ENOSPC) {
  return new SmmuError({ code: "RESOURCE_EXHAUSTED", reason, message, errno });
}

/** Throws INVALID_ARGUMENT unless `value` is an integer in [min, max]. */
export function checkInteger(value: number, min: number, max: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidArgument(
      "VALUE_OUT_OF_RANGE",
      `${field} must be an integer in [${min}, ${max}], got ${value}`,
      field,
    );
  }
}
