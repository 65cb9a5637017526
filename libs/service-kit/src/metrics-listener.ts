import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./logger.js";
import type { ServiceMetrics } from "./service-metrics.js";

/**
 * A gRPC service's Prometheus endpoint: GET /metrics on a plain HTTP listener of its own
 * (--metrics-addr). Written on node:http rather than with an HTTP framework: it serves one
 * read-only path, and the host services carry no HTTP framework otherwise.
 */
export class MetricsListener {
  private constructor(
    private readonly server: Server,
    /** host:port it listens on (the port the kernel picked when 0 was asked for). */
    readonly address: string,
  ) {}

  static async listen(address: string, metrics: ServiceMetrics, log: Logger): Promise<MetricsListener> {
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    const server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      if (path !== "/metrics") {
        response.writeHead(404, { "content-type": "text/plain" }).end("only /metrics is served here\n");
        return;
      }
      if (request.method !== "GET" && request.method !== "HEAD") {
        response.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("GET only\n");
        return;
      }
      metrics.exposition().then(
        (text) => response.writeHead(200, { "content-type": metrics.contentType }).end(text),
        (error: unknown) => {
          log.error({ err: error }, "metrics collection failed");
          response.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(Number(address.slice(colon + 1)), host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    const shown = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
    return new MetricsListener(server, `${shown}:${bound.port}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
