import type { FastifyPluginCallbackTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { VplaneError } from "@vplane/service-kit";
import { answerStreamHead, eventStreamResponse, lastEventIdOf } from "../http/event-stream.js";
import type { GatewayServices } from "../gateway-services.js";
import { operationView, type OperationRecord } from "../operations/operation-records.js";
import { ErrorBodySchema } from "../schemas/error-schema.js";
import { OperationSchema } from "../schemas/operation-schema.js";
import { PageQuery } from "../schemas/resource-id.js";

const errors = { "4xx": ErrorBodySchema, "5xx": ErrorBodySchema };
const OperationParams = Type.Object({
  operation: Type.String({ pattern: "^op-[0-9a-f]{20}$", description: "operation id (op-...)" }),
});
/** How often a watcher re-reads an operation run by another gateway replica. */
const POLL_MS = 500;

const operationNotFound = (id: string) =>
  new VplaneError({ code: "NOT_FOUND", reason: "OPERATION_NOT_FOUND", message: `no operation '${id}'` });

/** /v1/operations: long-running work (AIP-151): get, list, cancel, and watch as SSE. */
export const operationRoutes: FastifyPluginCallbackTypebox<{ services: GatewayServices }> = (
  app,
  { services },
  done,
) => {
  const { operations, runner } = services;
  const require = async (tenant: string, id: string) => {
    const found = await operations.get(tenant, id);
    if (!found) throw operationNotFound(id);
    return found.value;
  };

  app.get(
    "/operations",
    {
      schema: {
        operationId: "listOperations",
        tags: ["operations"],
        summary: "List the tenant's operations",
        querystring: PageQuery,
        response: {
          200: Type.Object({
            operations: Type.Array(OperationSchema),
            nextPageToken: Type.Optional(Type.String()),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const page = await operations.list(
        request.principal.tenant,
        request.query.pageSize || 100,
        request.query.pageToken,
      );
      return {
        operations: page.operations.map(operationView),
        ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
      };
    },
  );

  app.get(
    "/operations/:operation",
    {
      schema: {
        operationId: "getOperation",
        tags: ["operations"],
        summary: "Get an operation: state, progress, steps, and its result or error",
        params: OperationParams,
        response: { 200: OperationSchema, ...errors },
      },
    },
    // The replica running the operation answers from its own copy: polling clients cost no
    // registry read (an etcd round on some member each) while their operation runs here. Only
    // while its heartbeat is current: once it may lapse, another replica may take the operation
    // over, which this one would see only at its next write.
    async (request) => {
      const { tenant } = request.principal;
      const id = request.params.operation;
      const own = services.heartbeats.ownIsCurrent() ? runner.latest(tenant, id) : undefined;
      return operationView(own ?? (await require(tenant, id)));
    },
  );

  app.post(
    "/operations/:operation/cancel",
    {
      schema: {
        operationId: "cancelOperation",
        tags: ["operations"],
        summary: "Ask to cancel an operation",
        description:
          "Accepted is not cancelled: the operation goes CANCELLING, then CANCELLED if the work stopped and rolled back, or SUCCEEDED/FAILED if it could not be stopped. A create stops before its next device (one being created is created, then deleted again). A migrate stays CANCELLING until the source host's migration service has ended the migration and the destination has discarded what it received, which a cancel brings about in any phase before switchover (after it: SUCCEEDED); should that service not end it within 60 s, the gateway stops following and ends the operation by where the VM's devices are. Cancelling a finished operation changes nothing.",
        params: OperationParams,
        response: { 200: OperationSchema, ...errors },
      },
    },
    async (request) => {
      const { tenant } = request.principal;
      const id = request.params.operation;
      const updated = await runner.requestCancel(tenant, id);
      return operationView(updated ?? (await require(tenant, id)));
    },
  );

  app.get(
    "/operations/:operation/events",
    {
      schema: {
        operationId: "watchOperation",
        tags: ["operations"],
        summary: "Watch an operation's progress as Server-Sent Events",
        description:
          "text/event-stream. Events: `progress` (id = seq; data = {seq,time,state,progressPercent,step,message}), `gap` when events older than the kept window were skipped, and `done` with the final operation. Resume with the Last-Event-ID header.",
        params: OperationParams,
        querystring: Type.Object({ lastEventId: Type.Optional(Type.Integer({ minimum: 0 })) }),
        response: { 200: eventStreamResponse("text/event-stream: the operation at each change"), ...errors },
      },
    },
    async (request, reply) => {
      const { tenant } = request.principal;
      const id = request.params.operation;
      let lastSent = lastEventIdOf(request);
      // While this replica runs the operation and its heartbeat is current, the runner's copy is
      // the registry's (as for GET) and the runner hands every record it stores to the listener:
      // no registry read to open the stream, none to follow it.
      const ownCopy = () => (services.heartbeats.ownIsCurrent() ? runner.latest(tenant, id) : undefined);
      const first = ownCopy() ?? (await require(tenant, id));
      if (request.method === "HEAD") return answerStreamHead(reply);
      const stream = services.streams.start(request, reply);
      const emit = (record: OperationRecord) => {
        const fresh = record.events.filter((e) => e.seq > lastSent);
        const oldest = fresh[0];
        if (oldest && oldest.seq > lastSent + 1) {
          stream.send({ event: "gap", data: { fromSeq: lastSent + 1, toSeq: oldest.seq - 1 } });
        }
        for (const event of fresh) {
          stream.send({ id: event.seq, event: "progress", data: event });
          lastSent = event.seq;
        }
        if (record.done) {
          stream.send({ id: lastSent, event: "done", data: operationView(record) });
          stream.end();
        }
      };
      const key = `${tenant}/${id}`;
      const listener = (record: OperationRecord) => emit(record);
      runner.events.on(key, listener);
      const poll = setInterval(() => {
        if (ownCopy()) return;
        operations.get(tenant, id).then(
          (found) => (found ? emit(found.value) : stream.end()),
          () => undefined,
        );
      }, POLL_MS);
      emit(first);
      await stream.closed;
      clearInterval(poll);
      runner.events.off(key, listener);
    },
  );
  done();
};
