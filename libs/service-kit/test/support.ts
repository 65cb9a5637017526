import { credentials, makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { EchoServiceClient } from "@vplane/proto/gen/vplane/testing/v1/echo";
import { service as healthDefinition } from "grpc-health-check";
import pino from "pino";
import { echoService } from "../src/echo-service.js";
import { loadConfig } from "../src/config.js";
import { serverOptionsSpec, type ServerOptions } from "../src/server-options.js";
import { startService, type RunningService, type ServiceDescription } from "../src/service-runner.js";

export const silentLog = pino({ level: "silent" });

export const echoDescription: ServiceDescription<Record<string, never>> = {
  name: "echo",
  envPrefix: "ECHO",
  defaultPort: 0,
  options: {},
  start: ({ handlers }) => Promise.resolve({ services: [echoService(handlers)] }),
};

export function testConfig(overrides: Partial<ServerOptions> = {}): ServerOptions {
  return { ...loadConfig(serverOptionsSpec("ECHO", 0), { argv: [], env: {} }), ...overrides };
}

export async function startEcho(overrides: Partial<ServerOptions> = {}): Promise<{
  service: RunningService;
  echo: EchoServiceClient;
  health: Client & Record<string, (...args: unknown[]) => unknown>;
}> {
  const service = await startService(echoDescription, testConfig(overrides), silentLog);
  const address = service.server.address;
  const echo = new EchoServiceClient(address, credentials.createInsecure());
  const Health = makeGenericClientConstructor(healthDefinition, "grpc.health.v1.Health");
  const health = new Health(address, credentials.createInsecure()) as unknown as Client &
    Record<string, (...args: unknown[]) => unknown>;
  return { service, echo, health };
}
