import { credentials } from "@grpc/grpc-js";
import { openStore } from "@vplane/store";
import pino from "pino";
import { AccessTokens } from "./access/access-tokens.js";
import { buildApp } from "./app.js";
import { buildGatewayServices } from "./gateway.js";

/**
 * The gateway's OpenAPI document, as /openapi.json serves it, without a running gateway: the app
 * built around an in-memory registry (the document depends only on the routes' schemas). The
 * generated client (tools/gateway-client) is made from it at build time.
 */
export async function gatewayOpenApiDocument(): Promise<Record<string, unknown>> {
  const store = openStore("sqlite::memory:");
  const services = buildGatewayServices({
    log: pino({ level: "silent" }),
    store,
    tokens: AccessTokens.inMemory(),
    credentials: credentials.createInsecure(),
  });
  const app = await buildApp(services);
  try {
    await app.ready();
    return app.swagger() as unknown as Record<string, unknown>;
  } finally {
    await app.close();
    services.connections.close();
    await store.close();
  }
}
