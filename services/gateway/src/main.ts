#!/usr/bin/env node
import { EXIT, createLogger, loadConfigOrExit } from "@vplane/service-kit";
import { startGateway, type RunningGateway } from "./gateway.js";
import { gatewayLogDestination } from "./http/log-destination.js";
import { gatewayOptionsSpec } from "./gateway-options.js";

const config = loadConfigOrExit("gateway", gatewayOptionsSpec, process.argv.slice(2));
if (!config) process.exit(EXIT.GRACEFUL);
const log = createLogger({ name: "gateway", level: config.logLevel, destination: gatewayLogDestination() });
let gateway: RunningGateway;
try {
  gateway = await startGateway(config, log, {
    // The one time the token exists in clear: on the terminal, never in the log.
    onAdminToken: (token) =>
      process.stderr.write(
        `\ngateway: first start, created an admin token (tenant "default"); it is shown only now:\n\n  ${token}\n\n` +
          `  use it as:  Authorization: Bearer <token>   (vplanectl: VPLANE_TOKEN=<token>)\n\n`,
      ),
  });
} catch (error) {
  process.stderr.write(`gateway: could not start: ${(error as Error).message}\n`);
  log.flush();
  process.exit(EXIT.START_FAILED);
}
log.info({ url: gateway.url }, `gateway listening on ${gateway.url}`);

const stop = (signal: NodeJS.Signals | "disconnect") => {
  log.info({ signal }, "signal received: draining");
  const timer = setTimeout(() => {
    log.info({ outcome: "forced" }, "stopped");
    log.flush();
    process.exit(EXIT.FORCED);
  }, config.shutdownGraceMs);
  void gateway.close().then(() => {
    clearTimeout(timer);
    log.info({ outcome: "graceful" }, "stopped");
    log.flush();
    process.exit(EXIT.GRACEFUL);
  });
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
// Under npm start's supervisor (an IPC channel): its going away stops the gateway too.
if (process.channel) process.once("disconnect", () => stop("disconnect"));
