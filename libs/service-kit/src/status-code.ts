import { status } from "@grpc/grpc-js";

/** gRPC status codes by their canonical names, the form errors are written in throughout vplane. */
export type StatusCodeName = keyof typeof status;

export function statusCodeOf(name: StatusCodeName): status {
  return status[name];
}

export function statusNameOf(code: number): StatusCodeName | "UNKNOWN" {
  const entry = Object.entries(status).find(([, value]) => value === code);
  return (entry?.[0] as StatusCodeName | undefined) ?? "UNKNOWN";
}
