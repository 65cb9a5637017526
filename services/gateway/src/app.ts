import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { ServerOptions as HttpsOptions } from "node:https";
import { auditTrail } from "./access/audit-log.js";
import { authentication, callerIdentity } from "./access/authentication.js";
import { errorHandling } from "./http/error-handler.js";
import { answerClientError, answerFrameworkError } from "./http/framework-errors.js";
import type { GatewayServices } from "./gateway-services.js";
import { idempotency } from "./http/idempotency.js";
import { requestValidatorCompiler } from "./http/request-validation.js";
import { healthRoutes } from "./routes/health-routes.js";
import { hostJoinRoutes } from "./routes/host-join-routes.js";
import { hostRoutes } from "./routes/host-routes.js";
import { deviceRoutes } from "./routes/device-routes.js";
import { countRequests, metricsRoutes } from "./routes/metrics-routes.js";
import { operationRoutes } from "./routes/operation-routes.js";
import { rateLimit } from "./access/rate-limit.js";
import { OneLinePerRequest } from "./http/request-log.js";
import { vmRoutes } from "./routes/vm-routes.js";
import { hoistTitledSchemas } from "./http/openapi-components.js";
import { VPLANE_VERSION } from "@vplane/service-kit";

/**
 * The gateway's HTTP application: routes only, no listening (tests inject requests). Features
 * are encapsulated plugins; every route declares its TypeBox schemas, which validate requests
 * (TypeBox's compiler: bodies are never coerced) and make the OpenAPI document at /openapi.json.
 */
export async function buildApp(services: GatewayServices, https?: HttpsOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: services.log,
    logController: new OneLinePerRequest(),
    bodyLimit: services.limits.bodyLimitBytes,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    ...(https ? { https } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(requestValidatorCompiler);
  app.addHook("onRequest", (request, reply, done) => {
    void reply.header("x-request-id", request.id);
    done();
  });

  app.addHook("preClose", (done) => {
    services.streams.endAll();
    done();
  });
  await app.register(errorHandling);
  countRequests(app as unknown as FastifyInstance, services);
  await app.register(callerIdentity, { tokens: services.tokens });
  if (services.limits.rateLimitPerSecond > 0)
    await app.register(rateLimit, {
      perSecond: services.limits.rateLimitPerSecond,
      authFailuresPerSecond: services.limits.authFailuresPerSecond,
    });
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "vplane gateway",
        version: VPLANE_VERSION,
        license: { name: "Apache-2.0", url: "https://www.apache.org/licenses/LICENSE-2.0" },
        description:
          "REST API for orchestrators: hosts, VMs and their interrupt controllers and IOMMUs, long-running operations. Errors: {error: {code, reason, message, details}} with HTTP status mapped from the gRPC code as grpc-gateway does; a request with bad fields is one 400 listing every one in details.fieldViolations (google.rpc.BadRequest: field, description, reason); a known path asked with a method it lacks is 405 with Allow.",
      },
      servers: [{ url: "http://127.0.0.1:8080", description: "the gateway as npm start runs it" }],
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
      tags: [
        { name: "vms", description: "VMs of the caller's tenant" },
        { name: "hosts", description: "hosts and their services (admins register them)" },
        { name: "operations", description: "long-running operations (AIP-151)" },
        {
          name: "interrupt-controller",
          description: "a VM's XIVE/XICS controller: sources, queues, triggers, signals",
        },
        {
          name: "iommu",
          description: "a VM's SMMUv3 instances: stage 2, PASID tables, invalidation, MSI, faults",
        },
        { name: "health", description: "liveness, readiness and metrics (no token needed)" },
      ],
    },
    // Titled schemas become named components (Vm, Operation, Error, the proto messages).
    transformObject: (document) =>
      "openapiObject" in document ? hoistTitledSchemas(document.openapiObject) : document.swaggerObject,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());

  await app.register(healthRoutes, { services });
  await app.register(metricsRoutes, { services });
  await app.register(
    async (v1) => {
      await v1.register(authentication);
      await v1.register(idempotency, {
        store: services.store,
        instanceId: services.instanceId,
        heartbeats: services.heartbeats,
        waitMs: services.limits.idempotencyWaitMs,
      });
      await v1.register(auditTrail, { audit: services.audit });
      await v1.register(hostRoutes, { services });
      await v1.register(hostJoinRoutes, { services });
      await v1.register(vmRoutes, { services });
      await v1.register(operationRoutes, { services });
      await v1.register(deviceRoutes, { services, proto: services.proto });
    },
    { prefix: "/v1" },
  );
  return app as unknown as FastifyInstance;
}
