// Where a migration's time goes in the device services (issue 14's shape): the calls the
// migration services make, in their order, called directly on the two hosts' DeviceStateService
// and timed one by one: the pre-copy read on the source and its preparation on the destination
// (while the VM runs), then the stop-and-copy on the source and the finish (apply, make durable,
// resume) on the destination (the downtime), then release on the source. What a migration holds
// beyond these is the migration services' own work (forwarding chunks, the protocol).
import { credentials } from "@grpc/grpc-js";
import type { DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { ClientStreamCall, serverStreamCall, unaryCall } from "@vplane/service-kit";
import type { MigrationBenchHost } from "./migration-bench-host.js";

export type DeviceService = "interrupt controller" | "iommu";
export type DeviceStateCall = "readPreCopy" | "prepareImport" | "stopAndCopy" | "finishImport";
export const DEVICE_STATE_CALLS: readonly DeviceStateCall[] = [
  "readPreCopy",
  "prepareImport",
  "stopAndCopy",
  "finishImport",
];

export interface DeviceStateCallTimes {
  /** Milliseconds per call, by service and call. */
  ms: Map<DeviceService, Record<DeviceStateCall, number[]>>;
  /** Chunk bytes of each service's last pre-copy read and stop-and-copy. */
  bytes: Map<DeviceService, { preCopy: number; stop: number }>;
}

const OPTIONS = { timeoutMs: 120_000 };

async function timed<T>(into: number[], call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await call();
  into.push(performance.now() - started);
  return result;
}

/** All the chunks of a server stream. */
async function collect(stream: AsyncIterable<{ chunk?: DeviceStateChunk | undefined }>) {
  const chunks: DeviceStateChunk[] = [];
  for await (const { chunk } of stream) chunks.push(chunk!);
  return chunks;
}

/**
 * Moves `vm`'s devices `rounds` times between the hosts, starting on `from`; returns the per-call
 * times and the host it ends on.
 */
export async function timeDeviceStateCalls(
  from: MigrationBenchHost,
  to: MigrationBenchHost,
  vm: string,
  rounds: number,
): Promise<{ times: DeviceStateCallTimes; on: MigrationBenchHost }> {
  const services: DeviceService[] = ["interrupt controller", "iommu"];
  const clientOf = new Map(
    [from, to].map((host) => [
      host,
      new Map(
        services.map((service) => [
          service,
          new DeviceStateServiceClient(
            service === "iommu" ? host.iommu.address : host.interrupts.address,
            credentials.createInsecure(),
          ),
        ]),
      ),
    ]),
  );
  const empty = () => ({ readPreCopy: [], prepareImport: [], stopAndCopy: [], finishImport: [] });
  const times: DeviceStateCallTimes = {
    ms: new Map(services.map((s) => [s, empty()])),
    bytes: new Map(),
  };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const service of services) {
        const source = clientOf.get(from)!.get(service)!;
        const destination = clientOf.get(to)!.get(service)!;
        const ms = times.ms.get(service)!;
        const preCopy = await timed(ms.readPreCopy, () =>
          collect(serverStreamCall(source.readPreCopy.bind(source), { vm, iteration: 0 }, OPTIONS)),
        );
        await timed(ms.prepareImport, async () => {
          const call = new ClientStreamCall(destination.prepareImport.bind(destination), OPTIONS);
          for (const [i, chunk] of preCopy.entries())
            await call.write({
              vm,
              iteration: 0,
              guestMemory: i === 0 ? { path: "", sizeBytes: 0n } : undefined,
              backend: 0,
              chunk,
            });
          return call.finish();
        });
        const stop = await timed(ms.stopAndCopy, () =>
          collect(serverStreamCall(source.stopAndCopy.bind(source), { vm, destination: "" }, OPTIONS)),
        );
        await timed(ms.finishImport, async () => {
          const call = new ClientStreamCall(destination.finishImport.bind(destination), OPTIONS);
          for (const [i, chunk] of stop.entries())
            await call.write({
              vm,
              resume: true,
              guestMemory: i === 0 ? { path: "", sizeBytes: 0n } : undefined,
              backend: 0,
              chunk,
            });
          return call.finish();
        });
        const size = (chunks: DeviceStateChunk[]) => chunks.reduce((sum, c) => sum + c.data.length, 0);
        times.bytes.set(service, { preCopy: size(preCopy), stop: size(stop) });
        await unaryCall(source.releaseDevices.bind(source), { vm }, OPTIONS);
      }
      [from, to] = [to, from];
    }
  } finally {
    for (const clients of clientOf.values()) for (const client of clients.values()) client.close();
  }
  return { times, on: from };
}
