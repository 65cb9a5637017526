import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import type { GatewayServices } from "../gateway-services.js";
import { runIdempotentEffect } from "../http/idempotency.js";
import { operationView } from "../operations/operation-records.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { MigrateRequestSchema } from "../schemas/migration-schema.js";
import { OperationSchema } from "../schemas/operation-schema.js";
import { PageQuery, ResourceId } from "../schemas/resource-id.js";
import { VmSchema, VmSpecSchema } from "../schemas/vm-schema.js";

const errors = { "4xx": ErrorBodySchema, "5xx": ErrorBodySchema };
export const VmParams = Type.Object({ vm: ResourceId("VM id") });

/**
 * /v1/vms: a tenant's VMs. Create and delete answer 202 with the long-running operation at once;
 * the VM shows its state (CREATING, READY, DELETING, FAILED) meanwhile.
 */
export const vmRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  const { vms, lifecycle } = services;

  app.post(
    "/vms",
    {
      config: { answerInEffect: true },
      schema: {
        tags: ["vms"],
        operationId: "createVm",
        summary: "Create a VM: its interrupt controller and SMMUs on one host, all or nothing",
        description:
          "Answers 202 with the create operation. Send Idempotency-Key to make retries safe: a retry answers the first operation.",
        headers: Type.Object({ "idempotency-key": Type.Optional(Type.String({ maxLength: 255 })) }),
        body: VmSpecSchema,
        response: { 202: OperationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const held = request.idempotency;
      const operation = await runIdempotentEffect(request, reply, () =>
        lifecycle.create(request.principal, request.body, (op) =>
          held ? [held.commitOp(202, operationView(op))] : [],
        ),
      );
      if (!operation) return reply; // a request with this key answered it: that answer was sent
      if (held) held.committed = true;
      return reply.code(202).header("location", `/v1/${operation.name}`).send(operationView(operation));
    },
  );

  app.get(
    "/vms",
    {
      schema: {
        tags: ["vms"],
        operationId: "listVms",
        summary: "List the tenant's VMs, by name (AIP-158 paging)",
        querystring: PageQuery,
        response: {
          200: Type.Object({ vms: Type.Array(VmSchema), nextPageToken: Type.Optional(Type.String()) }),
          ...errors,
        },
      },
    },
    async (request) => {
      const page = await vms.list(
        request.principal.tenant,
        request.query.pageSize || 100,
        request.query.pageToken,
      );
      return { vms: page.vms, ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}) };
    },
  );

  app.get(
    "/vms/:vm",
    {
      schema: {
        tags: ["vms"],
        operationId: "getVm",
        summary: "Get a VM",
        params: VmParams,
        response: { 200: VmSchema, ...errors },
      },
    },
    async (request) => (await vms.require(request.principal.tenant, request.params.vm)).value,
  );

  app.delete(
    "/vms/:vm",
    {
      schema: {
        tags: ["vms"],
        operationId: "deleteVm",
        summary: "Delete a VM and every device it has on its host",
        params: VmParams,
        response: { 202: OperationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const operation = await lifecycle.delete(request.principal, request.params.vm);
      return reply.code(202).header("location", `/v1/${operation.name}`).send(operationView(operation));
    },
  );

  app.post(
    // Google's custom-method form, POST /v1/vms/{vm}:migrate (AIP-136); "::" is a literal colon.
    "/vms/:vm(^[^/:]+)::migrate",
    {
      config: { answerInEffect: true },
      schema: {
        tags: ["vms"],
        operationId: "migrateVm",
        summary: "Live-migrate a VM to another registered host",
        description:
          "Answers 202 with the migrate operation. The source host's migration service moves the VM's devices and guest RAM to the destination's; the operation mirrors its phase and progress in metadata.migration (RAM bytes, elapsed, downtime). Cancel through the operation: accepted is not cancelled, the final state says (a migration past switchover completes). On success the VM's host, RAM path and both hosts' usage change; on failure or cancel the VM stays where it was and the error names the phase. 409 ABORTED while another operation runs on the VM. Send Idempotency-Key to make retries safe.",
        headers: Type.Object({ "idempotency-key": Type.Optional(Type.String({ maxLength: 255 })) }),
        params: VmParams,
        body: MigrateRequestSchema,
        response: { 202: OperationSchema, ...errors },
      },
    },
    async (request, reply) => {
      const held = request.idempotency;
      const operation = await runIdempotentEffect(request, reply, () =>
        services.migrations.start(request.principal, request.params.vm, request.body, (op) =>
          held ? [held.commitOp(202, operationView(op))] : [],
        ),
      );
      if (!operation) return reply; // a request with this key answered it: that answer was sent
      if (held) held.committed = true;
      return reply.code(202).header("location", `/v1/${operation.name}`).send(operationView(operation));
    },
  );
  done();
};
