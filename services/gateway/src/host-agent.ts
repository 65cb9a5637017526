#!/usr/bin/env node
// A host's agent: joins the gateway fleet as this host and keeps its lease (hosts/host-agent.ts).
//   VPLANE_HOST_TOKEN_FILE=host.token VPLANE_HOST_GATEWAY_URLS=http://gw:8080 node services/gateway/dist/src/host-agent.js
// Runs beside the host's services (Kubernetes: a container of the host DaemonSet); --help lists
// its options.
import { clientCredentials, createLogger, EXIT, loadConfigOrExit } from "@vplane/service-kit";
import { HostAgent } from "./hosts/host-agent.js";
import { hostAgentOptionsSpec } from "./hosts/host-agent-options.js";

const config = loadConfigOrExit("host-agent", hostAgentOptionsSpec, process.argv.slice(2));
if (!config) process.exit(EXIT.GRACEFUL);
const log = createLogger({ name: "host-agent", level: config.logLevel });
let agent: HostAgent;
try {
  agent = new HostAgent(
    config,
    clientCredentials({ ca: config.serviceTlsCa, cert: config.serviceTlsCert, key: config.serviceTlsKey }),
    log,
  );
} catch (error) {
  process.stderr.write(`host-agent: ${(error as Error).message}\n`);
  process.exit(EXIT.BAD_CONFIG);
}
await agent.start();
log.info({ host: agent.hostId }, `host agent for ${agent.hostId} running`);
const stop = () => {
  agent.stop();
  log.flush();
  process.exit(EXIT.GRACEFUL);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
