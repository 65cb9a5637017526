#!/usr/bin/env node
import { EXIT, createLogger, loadConfigOrExit } from "@vplane/service-kit";
import { buildApp } from "./app.js";
import { gatewayOptionsSpec } from "./gateway-options.js";

const config = loadConfigOrExit("gateway", gatewayOptionsSpec, process.argv.slice(2));
if (!config) process.exit(EXIT.GRACEFUL);
const log = createLogger({ name: "gateway", level: config.logLevel });
const app = buildApp({ log });
const separator = config.address.lastIndexOf(":");
try {
  await app.listen({
    host: config.address.slice(0, separator).replace(/^\[|\]$/g, ""),
    port: Number(config.address.slice(separator + 1)),
  });
} catch (error) {
  process.stderr.write(`gateway: could not start: ${(error as Error).message}\n`);
  process.exit(EXIT.START_FAILED);
}
const bound = app.server.address();
const where = typeof bound === "object" && bound ? `${bound.address}:${bound.port}` : String(bound);
log.info({ address: where }, `gateway listening on http://${where}`);

const stop = (signal: NodeJS.Signals) => {
  log.info({ signal }, "signal received: draining");
  const timer = setTimeout(() => process.exit(EXIT.FORCED), config.shutdownGraceMs);
  void app.close().then(() => {
    clearTimeout(timer);
    log.flush();
    process.exit(EXIT.GRACEFUL);
  });
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
