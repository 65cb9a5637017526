import Fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "@vplane/service-kit";

/** The gateway's HTTP application: routes only, no listening (tests inject requests). */
export function buildApp(options: { log: Logger }): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.log,
    bodyLimit: 1024 * 1024,
    requestIdHeader: "x-request-id",
  });
  app.get("/healthz", () => ({ status: "ok" }));
  return app as unknown as FastifyInstance;
}
