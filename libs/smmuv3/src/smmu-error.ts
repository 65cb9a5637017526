/**
 * The one error type the model throws. Its shape is what the gRPC service maps generically
 * (AIP-193 ErrorInfo): a gRPC code name, a machine-readable reason, the positive Linux errno the
 * kernel interface returns for the same input (so a VMM can hand the guest exactly what the
 * kernel would), the offending field, and for batches the index of the first entry that failed.
 *
 * Translation faults are not errors: they come back as a result carrying the event record.
 */
export type SmmuErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "ALREADY_EXISTS"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED";

/** Linux errno values the kernel interfaces of the digest return (include/uapi/asm-generic/errno*.h). */
export const Errno = {
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;

export interface SmmuErrorInit {
  code: SmmuErrorCode;
  /** UPPER_SNAKE machine-readable reason, e.g. "STE_FIELD_NOT_ALLOWED". */
  reason: string;
  message: string;
  /** Positive errno the kernel returns for the same request, when there is one. */
  errno?: number;
  /** The request field at fault, e.g. "ste[0]" or "size". */
  field?: string;
  /** Index of the first failed entry of a batch; entries before it were applied. */
  batchIndex?: number;
}

export class SmmuError extends Error {
  readonly code: SmmuErrorCode;
  readonly reason: string;
  readonly errno: number | undefined;
  readonly field: string | undefined;
  readonly batchIndex: number | undefined;

  constructor(init: SmmuErrorInit) {
    super(init.message);
    this.name = "SmmuError";
    this.code = init.code;
    this.reason = init.reason;
    this.errno = init.errno;
    this.field = init.field;
    this.batchIndex = init.batchIndex;
  }

  /** A copy of this error that names the batch entry it came from. */
  atBatchIndex(index: number): SmmuError {
    return new SmmuError({
      code: this.code,
      reason: this.reason,
      message: `entry ${index}: ${this.message}`,
      errno: this.errno,
      field: this.field,
      batchIndex: index,
    });
  }
}

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
