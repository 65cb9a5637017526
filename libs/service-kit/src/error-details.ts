import { Metadata, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import type { Any } from "@vplane/proto/gen/google/protobuf/any";
import { BadRequest, ErrorInfo } from "@vplane/proto/gen/google/rpc/error_details";
import { Status } from "@vplane/proto/gen/google/rpc/status";
import { ErrorDetail } from "@vplane/proto/gen/vplane/common/v1/error";
import { statusCodeOf, statusNameOf } from "./status-code.js";
import { VplaneError } from "./vplane-error.js";

/** The ErrorInfo domain of every vplane error. */
export const ERROR_DOMAIN = "vplane.dev";
const DETAILS_KEY = "grpc-status-details-bin";
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";
const ERROR_DETAIL_TYPE = "type.googleapis.com/vplane.common.v1.ErrorDetail";
const BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";

/** The vplane.common.v1.ErrorDetail of an error (also the detail a long-running operation keeps). */
export function errorDetailOf(error: VplaneError): ErrorDetail {
  return {
    reason: error.reason,
    errno: error.errno,
    hcallReturnCode: error.hcallReturnCode === undefined ? undefined : BigInt(error.hcallReturnCode),
    field: error.field ?? "",
    batchIndex: error.batchIndex,
  };
}

/**
 * The google.rpc.Status of an error (AIP-193: ErrorInfo and ErrorDetail as details; an error that
 * names a field also a google.rpc.BadRequest with it, so a generic gRPC client finds the field
 * where AIP-193 puts it).
 */
export function toRpcStatus(error: VplaneError): Status {
  const metadata: Record<string, string> = { ...error.metadata };
  if (error.errno !== undefined) metadata["errno"] = String(error.errno);
  if (error.hcallReturnCode !== undefined) metadata["hcall_return_code"] = String(error.hcallReturnCode);
  if (error.field) metadata["field"] = error.field;
  if (error.batchIndex !== undefined) metadata["batch_index"] = String(error.batchIndex);
  const info = ErrorInfo.encode({ reason: error.reason, domain: ERROR_DOMAIN, metadata }).finish();
  const detail = ErrorDetail.encode(errorDetailOf(error)).finish();
  const details = [
    { typeUrl: ERROR_INFO_TYPE, value: Buffer.from(info) },
    { typeUrl: ERROR_DETAIL_TYPE, value: Buffer.from(detail) },
  ];
  if (error.field) {
    const violation = {
      field: error.field,
      description: error.message,
      reason: error.reason,
      localizedMessage: undefined,
    };
    const badRequest = BadRequest.encode({ fieldViolations: [violation] }).finish();
    details.push({ typeUrl: BAD_REQUEST_TYPE, value: Buffer.from(badRequest) });
  }
  return { code: statusCodeOf(error.code), message: error.message, details };
}

/** Builds the grpc-js status object (code, message, details metadata) for a VplaneError. */
export function toStatusObject(error: VplaneError): Partial<StatusObject> {
  const status = toRpcStatus(error);
  const trailers = new Metadata();
  trailers.set(DETAILS_KEY, Buffer.from(Status.encode(status).finish()));
  return { code: status.code, details: error.message, metadata: trailers };
}

/**
 * Reads a vplane error back from a failed call, as a client does: the code from the status, the
 * reason and codes from the details. A status without details (e.g. a deadline enforced by the
 * transport) still gives a VplaneError whose reason is the code's name.
 */
export function fromServiceError(error: ServiceError): VplaneError {
  const code = statusNameOf(error.code);
  const raw = error.metadata?.get(DETAILS_KEY)[0];
  const base = { code, reason: code, message: error.details };
  if (!(raw instanceof Buffer)) return new VplaneError(base);
  const details = Status.decode(raw).details.map((any: Any) => any);
  const detailAny = details.find((d) => d.typeUrl === ERROR_DETAIL_TYPE);
  if (!detailAny) return new VplaneError(base);
  const detail = ErrorDetail.decode(detailAny.value);
  const infoAny = details.find((d) => d.typeUrl === ERROR_INFO_TYPE);
  const metadata = extraMetadata(infoAny ? ErrorInfo.decode(infoAny.value).metadata : {});
  return new VplaneError({
    ...base,
    ...(metadata ? { metadata } : {}),
    reason: detail.reason,
    errno: detail.errno,
    hcallReturnCode: detail.hcallReturnCode === undefined ? undefined : Number(detail.hcallReturnCode),
    field: detail.field || undefined,
    batchIndex: detail.batchIndex,
  });
}

/** ErrorInfo metadata keys that ErrorDetail already carries. */
const MODELLED = new Set(["errno", "hcall_return_code", "field", "batch_index"]);

/** The ErrorInfo metadata beyond the modelled fields, if any. */
function extraMetadata(all: Record<string, string>): Record<string, string> | undefined {
  const extra = Object.entries(all).filter(([key]) => !MODELLED.has(key));
  return extra.length > 0 ? Object.fromEntries(extra) : undefined;
}
