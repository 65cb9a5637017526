import type { FastifyInstance, FastifyPluginCallback } from "fastify";
import type { GatewayServices } from "../gateway-services.js";

/** Counts every answered request by route template, and serves /metrics in Prometheus text format. */
export const metricsRoutes: FastifyPluginCallback<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  const { metrics } = services;
  app.get(
    "/metrics",
    { schema: { tags: ["health"], summary: "Prometheus metrics", hide: false } },
    async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  done();
};

/** The request metrics hook, on the root instance so that every route (and 404s) is counted. */
export function countRequests(app: FastifyInstance, services: GatewayServices): void {
  const { metrics } = services;
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
}
