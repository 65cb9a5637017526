import type { FastifyInstance, FastifyPluginCallback } from "fastify";
import type { GatewayServices } from "../gateway-services.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { probeLogLevel } from "./probe-log-level.js";
import { routeLabel } from "./route-label.js";

/** Serves /metrics in Prometheus text format (scrapes are logged at debug, like health probes). */
export const metricsRoutes: FastifyPluginCallback<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  const { metrics } = services;
  app.get(
    "/metrics",
    {
      logLevel: probeLogLevel(app.log),
      schema: {
        tags: ["health"],
        operationId: "getMetrics",
        summary: "Prometheus metrics",
        response: {
          200: { type: "string", description: "Prometheus text format 0.0.4" },
          "4xx": ErrorBodySchema,
        },
      },
    },
    async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.exposition()),
  );
  done();
};

/**
 * The request metrics hook, on the root instance so that every route (and 404s) is counted under
 * its route pattern (a label per pattern, never per URL).
 */
export function countRequests(app: FastifyInstance, services: GatewayServices): void {
  const { metrics } = services;
  // Each route pattern's label made once (four regular expressions), not once per request.
  const labels = new Map<string, string>();
  const labelOf = (url: string | undefined) => {
    if (url === undefined) return "unmatched";
    let label = labels.get(url);
    if (label === undefined) labels.set(url, (label = routeLabel(url)));
    return label;
  };
  app.addHook("onResponse", (request, reply, done) => {
    const route = labelOf(request.routeOptions.url);
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
}
