/** gRPC status names a model error may carry (a subset of the service kit's StatusCodeName). */
export type ModelErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "ALREADY_EXISTS"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL";

export interface ModelErrorFields<Code extends string = ModelErrorCode> {
  code: Code;
  /** Stable UPPER_SNAKE_CASE reason, e.g. "PRIORITY_RESERVED". */
  reason: string;
  message: string;
  /** Positive errno the kernel interface returns for the same input (EINVAL = 22). */
  errno?: number | undefined;
  /** PAPR hcall return code for the same input (H_P2 = -55). */
  hcallReturnCode?: number | undefined;
  /** The offending input, e.g. "priority" or "xive.queues[2].qaddr". */
  field?: string | undefined;
  /** For batches: index of the first failed entry; entries before it were applied. */
  batchIndex?: number | undefined;
}

/**
 * The one error shape of the device models: a bad input or an unavailable resource, with what a
 * service needs to answer it (AIP-193 ErrorInfo): a gRPC code name, a machine-readable reason,
 * the errno or H_* code the kernel or hypervisor returns for the same input, the offending
 * field and, for batches, the first failed entry. The service kit recognises the shape
 * (isDeviceFault), so a model imports no service library. Each model subclasses it for its name;
 * the service kit's VplaneError is the same shape over every gRPC status name (`Code`).
 */
export class ModelError<Code extends string = ModelErrorCode>
  extends Error
  implements ModelErrorFields<Code>
{
  readonly code: Code;
  readonly reason: string;
  readonly errno: number | undefined;
  readonly hcallReturnCode: number | undefined;
  readonly field: string | undefined;
  readonly batchIndex: number | undefined;

  constructor(fields: ModelErrorFields<Code>) {
    super(fields.message);
    this.name = new.target.name;
    this.code = fields.code;
    this.reason = fields.reason;
    this.errno = fields.errno;
    this.hcallReturnCode = fields.hcallReturnCode;
    this.field = fields.field;
    this.batchIndex = fields.batchIndex;
  }

  /** A copy of this error (same class) that names the batch entry it came from. */
  atBatchIndex(index: number): this {
    const Same = this.constructor as new (fields: ModelErrorFields<Code>) => this;
    return new Same({ ...this, message: `entry ${index}: ${this.message}`, batchIndex: index });
  }
}
