import type { StatusCodeName } from "@vplane/service-kit";

/**
 * HTTP status for each gRPC code, as grpc-gateway's runtime.HTTPStatusFromCode maps them
 * (DESIGN.md "API conventions"), so a REST client and a gRPC client read the same outcome.
 */
const HTTP_STATUS: Record<StatusCodeName, number> = {
  OK: 200,
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
};

export function httpStatusOf(code: StatusCodeName | "UNKNOWN"): number {
  return HTTP_STATUS[code];
}
