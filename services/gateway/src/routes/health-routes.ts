import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import type { GatewayServices } from "../gateway-services.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { probeLogLevel } from "./probe-log-level.js";
import { StringEnum } from "../schemas/string-enum.js";

const Health = StringEnum(["SERVING", "NOT_SERVING", "UNREACHABLE"]);
const ReadinessSchema = Type.Object({
  status: StringEnum(["ready", "not ready"]),
  registry: Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) }),
  hosts: Type.Array(
    Type.Object({
      name: Type.String(),
      services: Type.Object({ interruptController: Health, iommu: Health, migration: Health }),
    }),
  ),
});

/**
 * /healthz: the process answers (liveness). /readyz: this replica can serve, that is, the registry
 * answers (readiness); 503 otherwise. It also lists what every registered host's services report
 * on grpc.health.v1, but a host that is down does not make the replica unready: the replicas would
 * all leave the load balancer together for one host's fault. Placement skips such hosts instead.
 */
export const healthRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  app.get(
    "/healthz",
    {
      logLevel: probeLogLevel(app.log),
      schema: {
        tags: ["health"],
        operationId: "getLiveness",
        summary: "Liveness",
        // 4XX: what any route may answer before its handler (rate limit, a URL that does not decode).
        response: { 200: Type.Object({ status: Type.Literal("ok") }), "4xx": ErrorBodySchema },
      },
    },
    () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      logLevel: probeLogLevel(app.log),
      schema: {
        tags: ["health"],
        operationId: "getReadiness",
        summary: "Readiness: the registry answers (hosts' service health listed, not gating)",
        response: { 200: ReadinessSchema, "4xx": ErrorBodySchema, 503: ReadinessSchema },
      },
    },
    async (_request, reply) => {
      let registry: { ok: boolean; error?: string } = { ok: true };
      let hostRecords: Awaited<ReturnType<typeof services.hosts.list>> = [];
      try {
        hostRecords = await services.hosts.list();
      } catch (error) {
        registry = { ok: false, error: (error as Error).message };
      }
      const hosts = await Promise.all(
        hostRecords.map(async (host) => {
          const [interruptController, iommu, migration] = await Promise.all([
            services.connections.healthOf(host.addresses.interruptController),
            services.connections.healthOf(host.addresses.iommu),
            services.connections.healthOf(host.addresses.migration),
          ]);
          return { name: host.name, services: { interruptController, iommu, migration } };
        }),
      );
      const ready = registry.ok;
      return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", registry, hosts });
    },
  );
  done();
};
