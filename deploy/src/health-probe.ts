import { credentials } from "@grpc/grpc-js";
import { HealthClient } from "@vplane/service-kit";
import type { CatalogEntry } from "./service-catalog.js";

/**
 * True when the process at `address` reports itself ready: SERVING on grpc.health.v1 (overall
 * server, service ""), or 200 from `GET /healthz`. Never throws; an unreachable process is false.
 */
export async function isHealthy(kind: CatalogEntry["kind"], address: string, timeoutMs = 1000) {
  if (kind === "http") {
    try {
      const response = await fetch(`http://${address}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      return response.ok;
    } catch {
      return false;
    }
  }
  const client = new HealthClient(address, credentials.createInsecure());
  try {
    return (await client.check(timeoutMs)) === "SERVING";
  } finally {
    client.close();
  }
}

/** The address to dial for a listen address: a wildcard host is reached on loopback. */
export function dialAddress(listenAddress: string): string {
  const separator = listenAddress.lastIndexOf(":");
  const host = listenAddress.slice(0, separator);
  const port = listenAddress.slice(separator + 1);
  const wildcard = host === "" || host === "0.0.0.0" || host === "[::]" || host === "::";
  return `${wildcard ? "127.0.0.1" : host}:${port}`;
}
