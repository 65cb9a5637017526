// Where a migration's downtime goes in the device services: the steps the migration service
// takes, in its order (quiesce and export on the source, import and resume on the destination,
// each service in turn, then release on the source), called directly on the two hosts'
// DeviceStateService and timed one by one. What the downtime holds beyond these is the migration
// service's own work (snapshot encode/decode, the dirty-page list, the transfer stream).
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { credentials } from "@grpc/grpc-js";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { unaryCall } from "@vplane/service-kit";
import type { MigrationBenchHost } from "./migration-bench-host.js";

export type DeviceService = "interrupt controller" | "iommu";
export type DeviceStateCall = "quiesce" | "export" | "import" | "resume";

export interface DeviceStateCallTimes {
  /** Milliseconds per call, by service and call. */
  ms: Map<DeviceService, Record<DeviceStateCall, number[]>>;
  /** Dirty pages each service's last quiesce reported, and their size in bytes. */
  dirty: Map<DeviceService, { pages: number; pageSize: number }>;
}

async function timed<T>(into: number[], call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await call();
  into.push(performance.now() - started);
  return result;
}

const OPTIONS = { timeoutMs: 60_000 };

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
  const times: DeviceStateCallTimes = {
    ms: new Map(services.map((s) => [s, { quiesce: [], export: [], import: [], resume: [] }])),
    dirty: new Map(),
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const source = clientOf.get(from)!;
      const destination = clientOf.get(to)!;
      for (const service of services) {
        const client = source.get(service)!;
        const quiesced = await timed(times.ms.get(service)!.quiesce, () =>
          unaryCall(client.quiesceDevices.bind(client), { vm }, OPTIONS),
        );
        times.dirty.set(service, {
          pages: quiesced.dirtyPages.length,
          pageSize: Number(quiesced.pageSize),
        });
      }
      const sections: DeviceSection[][] = [];
      for (const service of services) {
        const client = source.get(service)!;
        const exported = await timed(times.ms.get(service)!.export, () =>
          unaryCall(client.exportDeviceState.bind(client), { vm }, OPTIONS),
        );
        sections.push(exported.sections);
      }
      for (const [i, service] of services.entries()) {
        const client = destination.get(service)!;
        await timed(times.ms.get(service)!.import, () =>
          unaryCall(
            client.importDeviceState.bind(client),
            {
              vm,
              sections: sections[i]!,
              guestMemory: undefined,
              requestId: "",
              backend: Backend.BACKEND_UNSPECIFIED,
            },
            OPTIONS,
          ),
        );
      }
      for (const service of services) {
        const client = destination.get(service)!;
        await timed(times.ms.get(service)!.resume, () =>
          unaryCall(client.resumeDevices.bind(client), { vm }, OPTIONS),
        );
      }
      for (const service of services) {
        const client = source.get(service)!;
        await unaryCall(client.releaseDevices.bind(client), { vm }, OPTIONS);
      }
      [from, to] = [to, from];
    }
  } finally {
    for (const clients of clientOf.values()) for (const client of clients.values()) client.close();
  }
  return { times, on: from };
}
