// Test support for services, exported as "@vplane/service-kit/testing": a service started in
// this process on a loopback port the kernel picks, with logging off unless asked for.
import type { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import type { DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import type { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import type { ConfigSpec } from "./config.js";
import { loadConfig } from "./config.js";
import {
  configSpecOf,
  startService,
  type RunningService,
  type ServiceDescription,
} from "./service-runner.js";
import { ClientStreamCall, serverStreamCall } from "./stream-calls.js";

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
export { suiteFixture } from "./suite-fixture.js";
export { failingWrites, type FailingWrites } from "./failing-writes.js";

/**
 * The streaming calls of a DeviceStateService (issue 14's pre-copy), as a migration drives
 * them: the chunks a ReadPreCopy or StopAndCopy sends, and PrepareImport / FinishImport fed
 * with such chunks (`first` holding the first message's guest RAM and backend), answering the
 * device names.
 */
export function deviceStateStreams(client: DeviceStateServiceClient, timeoutMs = 10_000) {
  const chunksOf = async <T extends { chunk?: DeviceStateChunk | undefined }>(stream: AsyncIterable<T>) => {
    const chunks: DeviceStateChunk[] = [];
    for await (const { chunk } of stream) if (chunk) chunks.push(chunk);
    return chunks;
  };
  return {
    readPreCopy: (vm: string, iteration: number) =>
      chunksOf(serverStreamCall(client.readPreCopy.bind(client), { vm, iteration }, { timeoutMs })),
    stopAndCopy: (vm: string, destination = "destination:50053") =>
      chunksOf(serverStreamCall(client.stopAndCopy.bind(client), { vm, destination }, { timeoutMs })),
    async prepareImport(vm: string, iteration: number, chunks: DeviceStateChunk[], first: ImportFields) {
      const call = new ClientStreamCall(client.prepareImport.bind(client), { timeoutMs });
      for (const chunk of chunks) await call.write({ vm, iteration, ...first, chunk });
      return (await call.finish()).devices;
    },
    async finishImport(vm: string, chunks: DeviceStateChunk[], resume: boolean, first: ImportFields) {
      const call = new ClientStreamCall(client.finishImport.bind(client), { timeoutMs });
      for (const chunk of chunks) await call.write({ vm, resume, ...first, chunk });
      return (await call.finish()).devices;
    },
  };
}

/** The guest RAM and backend an import stream's messages carry. */
export interface ImportFields {
  guestMemory: GuestMemory | undefined;
  backend: Backend;
}
export { finishWriteHosts } from "./finish-write-hosts.js";
