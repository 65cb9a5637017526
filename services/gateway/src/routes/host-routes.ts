import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import type { FastifyRequest } from "fastify";
import type { GatewayServices } from "../gateway-services.js";
import { probeHost } from "../hosts/host-status.js";
import { hostView } from "../hosts/host-view.js";
import { NO_USAGE, type HostUsage } from "../registry/host-registry.js";
import type { HostRecord } from "../schemas/host-schema.js";
import { HostSchema, HostSpecSchema } from "../schemas/host-schema.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { ResourceId } from "../schemas/resource-id.js";

const errors = { "4xx": ErrorBodySchema, "5xx": ErrorBodySchema };
const HostParams = Type.Object({ host: ResourceId("host id") });

/**
 * /v1/hosts: the per-host service sets the gateway places VMs on. Only admins change them, see
 * their addresses and services, and see what every tenant's VMs take on them; any other caller
 * sees each host with what its own tenant's VMs take there (a tenant learns nothing of others).
 */
export const hostRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  const { hosts, vms, connections } = services;
  const withUsage = async (host: HostRecord) => hostView(await services.hostStates.of(host));
  const tenantView = (host: HostRecord, usage: Map<string, HostUsage>) => {
    const { addresses: _admins, ...rest } = host;
    return { ...rest, usage: usage.get(host.name) ?? NO_USAGE };
  };
  const isAdmin = (request: FastifyRequest) => request.principal.role === "admin";

  app.post(
    "/hosts",
    {
      config: { minimumRole: "admin" },
      schema: {
        operationId: "registerHost",
        tags: ["hosts"],
        summary: "Register a host (admin)",
        body: HostSpecSchema,
        response: { 201: HostSchema, ...errors },
      },
    },
    async (request, reply) => {
      const host = await hosts.register(request.body, "api");
      return reply.code(201).send(await withUsage(host));
    },
  );

  app.get(
    "/hosts",
    {
      schema: {
        operationId: "listHosts",
        tags: ["hosts"],
        summary:
          "List hosts with their usage (admins: every tenant's, with addresses; others: their own tenant's)",
        response: { 200: Type.Object({ hosts: Type.Array(HostSchema) }), ...errors },
      },
    },
    async (request) => {
      const records = await hosts.list();
      if (isAdmin(request)) return { hosts: await Promise.all(records.map(withUsage)) };
      const usage = await vms.usageOf(request.principal.tenant);
      return { hosts: records.map((host) => tenantView(host, usage)) };
    },
  );

  app.get(
    "/hosts/:host",
    {
      schema: {
        operationId: "getHost",
        tags: ["hosts"],
        summary:
          "Get a host; admins also get its services' health and capabilities, asked now (others: their own tenant's usage only)",
        params: HostParams,
        response: { 200: HostSchema, ...errors },
      },
    },
    async (request) => {
      const host = await hosts.require(request.params.host);
      if (!isAdmin(request)) return tenantView(host, await vms.usageOf(request.principal.tenant));
      return { ...(await withUsage(host)), services: await probeHost(connections, host) };
    },
  );

  app.delete(
    "/hosts/:host",
    {
      config: { minimumRole: "admin" },
      schema: {
        operationId: "deleteHost",
        tags: ["hosts"],
        summary: "Remove a host that has no VMs (admin)",
        params: HostParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await hosts.remove(request.params.host);
      return reply.code(204).send(null);
    },
  );
  done();
};
