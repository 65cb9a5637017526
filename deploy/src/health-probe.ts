import { credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { service as healthDefinition } from "grpc-health-check";
import type { CatalogEntry } from "./service-catalog.js";

const HealthClient = makeGenericClientConstructor(healthDefinition, "grpc.health.v1.Health");

/** The one method of grpc.health.v1.Health this probe calls, typed (the generic client is not). */
interface HealthCheckClient {
  check(
    request: { service: string },
    options: { deadline: number },
    callback: (error: Error | null, response?: { status?: string }) => void,
  ): void;
  close(): void;
}

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
  const client = new HealthClient(address, credentials.createInsecure()) as unknown as HealthCheckClient;
  try {
    return await new Promise<boolean>((done) => {
      client.check({ service: "" }, { deadline: Date.now() + timeoutMs }, (error, response) =>
        done(!error && response?.status === "SERVING"),
      );
    });
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
