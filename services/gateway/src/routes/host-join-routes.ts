import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { VplaneError } from "@vplane/service-kit";
import type { GatewayServices } from "../gateway-services.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { HostJoinSchema, HostRecordSchema } from "../schemas/host-schema.js";
import { ResourceId, Timestamp } from "../schemas/resource-id.js";

const errors = { "4xx": ErrorBodySchema, "5xx": ErrorBodySchema };

const HostJoinAnswerSchema = Type.Object({
  host: HostRecordSchema,
  lease: Type.Object({ renewTime: Timestamp, expireTime: Timestamp, ttlMs: Type.Integer() }),
  heartbeatMs: Type.Integer({ description: "when to send the next heartbeat, ms from now" }),
});

/**
 * POST /v1/hosts/{host}:join: a host registers itself and, by calling it again, keeps its lease
 * (heartbeat). Its credential is a "host" token naming that host (issue-token.js --role host
 * --host NAME); an admin token may call it too. Any gateway replica answers: the record and the
 * lease are in the shared registry.
 */
export const hostJoinRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  app.post(
    "/hosts/:host(^[^/:]+)::join",
    {
      config: { minimumRole: "host" },
      schema: {
        operationId: "joinHost",
        tags: ["hosts"],
        summary: "Register or refresh a host, by its own agent (host credential)",
        description:
          "Registers the host when it is new, else updates the addresses and capacity it declares now, and renews its lease. A host whose lease lapses (no heartbeat for VPLANE_GATEWAY_HOST_LEASE_MS) gets no new VMs until it joins again. heartbeatMs says when to call again.",
        params: Type.Object({ host: ResourceId("host id the credential names") }),
        body: HostJoinSchema,
        response: { 200: HostJoinAnswerSchema, ...errors },
      },
    },
    async (request) => {
      const { principal } = request;
      const { host } = request.params;
      if (principal.role !== "admin" && !(principal.role === "host" && principal.host === host)) {
        throw new VplaneError({
          code: "PERMISSION_DENIED",
          reason: principal.role === "host" ? "HOST_CREDENTIAL_MISMATCH" : "ROLE_NOT_ALLOWED",
          message:
            principal.role === "host"
              ? `this credential speaks for host '${principal.host ?? ""}', not '${host}'`
              : `joining a host needs that host's credential or an admin token; the token has ${principal.role}`,
        });
      }
      const ttlMs = services.fleet.hostLeaseMs;
      const renewal = services.leases.renewal(host, ttlMs, request.body.agentVersion);
      const record = await services.hosts.join(host, request.body, [renewal.op]);
      return {
        host: record,
        lease: {
          renewTime: new Date(renewal.lease.renewedAtMs).toISOString(),
          expireTime: new Date(renewal.lease.renewedAtMs + ttlMs).toISOString(),
          ttlMs,
        },
        heartbeatMs: Math.max(100, Math.floor(ttlMs / 3)),
      };
    },
  );
  done();
};
