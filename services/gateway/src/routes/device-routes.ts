import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import {
  Metadata,
  type CallOptions,
  type Client,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import { Type, type TSchema } from "@sinclair/typebox";
import { VplaneError, fromServiceError, unaryCall, type UnaryCallOptions } from "@vplane/service-kit";
import type { FastifyRequest } from "fastify";
import { DEVICE_ROUTES, DEVICE_SERVICES, DEVICE_STREAMS, type DeviceKind } from "../devices/device-api.js";
import { errorBody } from "../http/error-body.js";
import { answerStreamHead, eventStreamResponse, lastEventIdOf } from "../http/event-stream.js";
import type { GatewayServices } from "../gateway-services.js";
import type { ProtoJson } from "../devices/proto-json.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { ResourceId } from "../schemas/resource-id.js";
import { controllerName, smmuName } from "../vms/device-names.js";

const errors = { "4xx": ErrorBodySchema, "5xx": ErrorBodySchema };
const passBytes = (bytes: Buffer) => bytes;

function paramsSchema(path: string): TSchema {
  const properties: Record<string, TSchema> = {};
  for (const [, name] of path.matchAll(/:([a-z]+)/g)) {
    properties[name!] =
      name === "vm"
        ? ResourceId("VM id")
        : name === "smmu"
          ? ResourceId("SMMU id")
          : Type.Integer({ minimum: 0, maximum: 0xffffffff });
  }
  return Type.Object(properties);
}

/** One unary call with pre-encoded request bytes; answers the response bytes. */
function rawUnary(client: Client, path: string) {
  return (
    request: Buffer,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response: Buffer) => void,
  ): ClientUnaryCall =>
    client.makeUnaryRequest<Buffer, Buffer>(
      path,
      passBytes,
      passBytes,
      request,
      metadata,
      options,
      (error, response) => callback(error ?? null, response ?? Buffer.alloc(0)),
    );
}

/**
 * The device endpoints of device-api.ts: each request is checked against the caller's tenant (a
 * foreign or missing VM is 404 alike), its resource name is set by the gateway from the VM's
 * host-side id (a body cannot name another VM's device), and the call goes to the VM's host.
 * An RPC a service does not implement yet answers 501 UNIMPLEMENTED in the error shape.
 */
export const deviceRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices; proto: ProtoJson }> = (
  app,
  { services, proto },
  done,
) => {
  const { vms, hosts, connections } = services;

  /** The VM's device this request addresses, on its host; the VM must be READY. */
  async function target(request: FastifyRequest, kind: DeviceKind) {
    const params = request.params as { vm: string; smmu?: string };
    const vm = (await vms.require(request.principal.tenant, params.vm)).value;
    if (vm.state !== "READY") {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "VM_NOT_READY",
        message: `VM '${vm.name}' is ${vm.state}; its devices answer once it is READY`,
      });
    }
    let name = controllerName(vm);
    if (kind === "iommu") {
      if (!vm.iommu.smmus.some((s) => s.name === params.smmu)) {
        throw new VplaneError({
          code: "NOT_FOUND",
          reason: "SMMU_NOT_FOUND",
          message: `VM '${vm.name}' has no SMMU '${params.smmu}'`,
        });
      }
      name = smmuName(vm, params.smmu!);
    }
    const host = await hosts.require(vm.host);
    const clients = connections.clientsOf(host.addresses);
    return { vm, name, client: kind === "iommu" ? clients.iommu : clients.interrupt };
  }

  for (const route of DEVICE_ROUTES) {
    const service = DEVICE_SERVICES[route.kind];
    if (!proto.hasMethod(service, route.rpc)) continue;
    const method = proto.method(service, route.rpc);
    const fromPath = ["name", ...(route.pathFields ?? [])];
    const hasRequestId = method.input.fields.some((f) => f.name === "request_id");
    const bodySchema = proto.schemaOf(method.input, [...fromPath.map(snake), "request_id"]);
    app.route({
      method: route.method,
      url: route.path,
      schema: {
        operationId: operationIdOf(route.rpc),
        tags: [route.kind === "iommu" ? "iommu" : "interrupt-controller"],
        summary: route.summary,
        description: `Calls ${service}/${route.rpc} on the VM's host. Body and answer: the request and response messages in proto3 JSON (64-bit integers as strings).${hasRequestId ? " Idempotency-Key is passed on as request_id." : ""}`,
        params: paramsSchema(route.path),
        ...(route.method === "GET" ? {} : { body: bodySchema }),
        response: { 200: proto.schemaOf(method.output), ...errors },
      },
      handler: async (request) => {
        const { vm, name, client } = await target(request, route.kind);
        const params = request.params as Record<string, unknown>;
        const json: Record<string, unknown> = {
          ...((request.body as Record<string, unknown> | undefined) ?? {}),
          name,
        };
        for (const field of route.pathFields ?? []) json[field] = params[field];
        const key = request.headers["idempotency-key"];
        if (hasRequestId && typeof key === "string") json["requestId"] = `${vm.uid}/${key}`;
        const bytes = proto.encode(method.input, json);
        const answer = await connections.call(route.kind, route.rpc, (options: UnaryCallOptions) =>
          unaryCall(rawUnary(client, `/${service}/${route.rpc}`), bytes, {
            ...options,
            requestId: request.id,
          }),
        );
        return proto.decode(method.output, answer);
      },
    });
  }

  for (const stream of DEVICE_STREAMS) {
    const service = DEVICE_SERVICES[stream.kind];
    if (!proto.hasMethod(service, stream.rpc)) continue;
    const method = proto.method(service, stream.rpc);
    app.get(
      stream.path,
      {
        schema: {
          operationId: operationIdOf(stream.rpc),
          tags: [stream.kind === "iommu" ? "iommu" : "interrupt-controller"],
          summary: stream.summary,
          description: `text/event-stream over ${service}/${stream.rpc}. Each event's id is its sequence number and its data the response message in proto3 JSON; resume with Last-Event-ID. An \`error\` event carries the error shape when the service ends the stream.`,
          params: paramsSchema(stream.path),
          querystring: Type.Object({ lastEventId: Type.Optional(Type.Integer({ minimum: 0 })) }),
          response: { 200: eventStreamResponse("text/event-stream: one event per message"), ...errors },
        },
      },
      async (request, reply) => {
        const lastSeen = lastEventIdOf(request);
        const { name, client } = await target(request, stream.kind);
        if (request.method === "HEAD") return answerStreamHead(reply);
        const json: Record<string, unknown> = { name };
        if (lastSeen > 0)
          json[stream.resume.field] = stream.resume.fromLastEventId(BigInt(lastSeen)).toString();
        const bytes = proto.encode(method.input, json);
        const metadata = new Metadata();
        metadata.set("x-request-id", String(request.id));
        const call = client.makeServerStreamRequest(
          `/${service}/${stream.rpc}`,
          passBytes,
          passBytes,
          bytes,
          metadata,
          {},
        );
        const events = services.streams.start(request, reply);
        call.on("data", (message: Buffer) => {
          const data = proto.decode(method.output, message);
          const sequence = data["sequence"];
          events.send({
            ...(typeof sequence === "string" ? { id: sequence } : {}),
            event: eventNameOf(data),
            data,
          });
        });
        call.on("error", (error: ServiceError) => {
          const failure = fromServiceError(error);
          services.metrics.rpcCalls.inc({ service: stream.kind, method: stream.rpc, code: failure.code });
          if (failure.code !== "CANCELLED") events.send({ event: "error", data: errorBody(failure) });
          events.end();
        });
        call.on("end", () => events.end());
        await events.closed;
        call.cancel();
      },
    );
  }
  done();
};

function snake(jsonName: string): string {
  return jsonName.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The SSE event name: the set oneof case or flag of the message (fault, pageRequest, lost, dropped), else "event". */
function eventNameOf(data: Record<string, unknown>): string {
  for (const kind of ["event", "pageRequest", "lost"])
    if (data[kind] !== undefined && data[kind] !== null) return kind === "event" ? "fault" : kind;
  if (data["dropped"] !== undefined && data["dropped"] !== "0") return "dropped";
  if (data["raised"] !== undefined) return "signal";
  return "event";
}

/** Device RPCs of the route table that the current API does not have (listed for the report and docs). */
export function missingDeviceRpcs(proto: ProtoJson): string[] {
  return [...DEVICE_ROUTES, ...DEVICE_STREAMS]
    .filter((r) => !proto.hasMethod(DEVICE_SERVICES[r.kind], r.rpc))
    .map((r) => `${DEVICE_SERVICES[r.kind]}/${r.rpc}`);
}

/** The OpenAPI operationId of a device route: its RPC's name in lower camel case (ConnectVcpu -> connectVcpu). */
function operationIdOf(rpc: string): string {
  return rpc.charAt(0).toLowerCase() + rpc.slice(1);
}
