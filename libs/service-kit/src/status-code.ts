import { status } from "@grpc/grpc-js";

/** gRPC status codes by their canonical names, the form errors are written in throughout vplane. */
export type StatusCodeName = keyof typeof status;

const names = new Map<number, StatusCodeName>(
  Object.entries(status).map(([name, code]) => [code as number, name as StatusCodeName]),
);

export function statusCodeOf(name: StatusCodeName): status {
  return status[name];
}

export function statusNameOf(code: number): StatusCodeName | "UNKNOWN" {
  return names.get(code) ?? "UNKNOWN";
}
