// Test support for services, exported as "@vplane/service-kit/testing": a service started in
// this process on a loopback port the kernel picks, with logging off unless asked for.
import type { ConfigSpec } from "./config.js";
import { loadConfig } from "./config.js";
import {
  configSpecOf,
  startService,
  type RunningService,
  type ServiceDescription,
} from "./service-runner.js";

export interface ServiceUnderTest extends RunningService {
  /** host:port the service listens on (127.0.0.1 and an ephemeral port). */
  readonly address: string;
}

/**
 * Starts `description` as its entry point would, configured from `env` (the same variables a
 * deployment sets), listening on 127.0.0.1:0 and silent unless VPLANE_LOG_LEVEL says otherwise.
 */
export async function startServiceForTests<S extends ConfigSpec>(
  description: ServiceDescription<S>,
  env: Record<string, string> = {},
): Promise<ServiceUnderTest> {
  const config = loadConfig(configSpecOf(description), {
    argv: [],
    env: { [`VPLANE_${description.envPrefix}_ADDR`]: "127.0.0.1:0", VPLANE_LOG_LEVEL: "silent", ...env },
  });
  const running = await startService(description, config);
  return Object.assign(running, { address: `127.0.0.1:${running.server.port}` });
}

/** GETs http://address/metrics and returns the exposition text (fails on a non-200 answer). */
export async function scrapeMetrics(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

export { sampleValue } from "./metrics-sample.js";
export { createTestCertificates, type CertificateFiles, type TestCertificates } from "./test-certificates.js";
export { spawnServiceProcess, type ServiceProcess } from "./service-process.js";
