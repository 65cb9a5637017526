// One host of the migration benchmark on loopback: the interrupt-controller and iommu services and
// the migration service driving both through their DeviceStateService, with the host's own data
// folder; beside it a second migration service over the same device services with
// VPLANE_MIGRATION_DEVICE_PRECOPY=false, for the no-pre-copy path in the same run. Two shapes:
// "process-per-service" runs each service as its own process from its entry point, as deployed
// (a chunk's hops cross processes, and the two device services work side by side);
// "in-process" runs them all in the benchmark's process, one event loop for every service.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { migrationDescription } from "@vplane/migration";
import { OperationsClient } from "@vplane/proto/gen/google/longrunning/operations";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { OperationProgress, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { spawnServiceProcess, startServiceForTests } from "@vplane/service-kit/testing";
import { ADDR_ENV, serviceEntry, type HostServiceName } from "./host-service-entries.js";

/** Where a host's services run: each in its own process (as deployed) or all in this one. */
export type HostShape = "process-per-service" | "in-process";

/** A running service of a host, whichever its shape. */
interface HostService {
  address: string;
  stop(): Promise<void>;
}

async function startService(
  shape: HostShape,
  kind: HostServiceName,
  env: Record<string, string>,
): Promise<HostService> {
  if (shape === "in-process") {
    const service = await (kind === "interrupt-controller"
      ? startServiceForTests(interruptControllerDescription, env)
      : kind === "iommu"
        ? startServiceForTests(iommuDescription, env)
        : startServiceForTests(migrationDescription, env));
    return { address: service.address, stop: async () => void (await service.stop(500)) };
  }
  const child = await spawnServiceProcess(
    serviceEntry(kind),
    { ...env, [ADDR_ENV[kind]]: "127.0.0.1:0" },
    60_000,
  );
  return { address: child.listening, stop: () => child.kill("SIGTERM") };
}

/** What one completed migration measured. */
export interface MigrationResult {
  /** OperationProgress.downtime_us as ms: the source's pause → the destination's resume. */
  downtimeMs: number;
  /** OperationProgress.downtime_bound_us as ms: StopAndCopy sent → the destination's report. */
  downtimeBoundMs: number;
  /** Device-state bytes moved: pre-copy and stop-and-copy together. */
  deviceStateBytes: number;
  precopyBytes: number;
  precopyIterations: number;
  stopCopyBytes: number;
  /** gRPC messages inside the downtime, both hosts. */
  downtimeMessages: number;
  dirtyPages: number;
  /** StartMigration → WaitOperation answered done, ms (client side). */
  operationMs: number;
}

/** A migration service and its clients. */
interface MigrationEndpoint {
  service: HostService;
  client: MigrationServiceClient;
  operations: OperationsClient;
}

function endpoint(service: HostService): MigrationEndpoint {
  const insecure = credentials.createInsecure();
  return {
    service,
    client: new MigrationServiceClient(service.address, insecure),
    operations: new OperationsClient(service.address, insecure),
  };
}

export class MigrationBenchHost {
  private constructor(
    readonly dataDir: string,
    readonly interrupts: HostService,
    readonly iommu: HostService,
    readonly migration: HostService,
    readonly interruptClient: InterruptControllerServiceClient,
    readonly iommuClient: IommuServiceClient,
    /** Migrations out with pre-copy, then without. */
    private readonly out: { precopy: MigrationEndpoint; plain: MigrationEndpoint },
  ) {}

  static async start(shape: HostShape, env: Record<string, string> = {}): Promise<MigrationBenchHost> {
    const dataDir = mkdtempSync(join(tmpdir(), "vplane-migration-bench-"));
    const [interrupts, iommu] = await Promise.all([
      startService(shape, "interrupt-controller", { VPLANE_DATA_DIR: dataDir, ...env }),
      startService(shape, "iommu", { VPLANE_DATA_DIR: dataDir, ...env }),
    ]);
    const migrationEnv = {
      VPLANE_DATA_DIR: dataDir,
      VPLANE_MIGRATION_INTERRUPT_TARGET: interrupts.address,
      VPLANE_MIGRATION_IOMMU_TARGET: iommu.address,
      ...env,
    };
    const [migration, plain] = await Promise.all([
      startService(shape, "migration", migrationEnv),
      startService(shape, "migration", { ...migrationEnv, VPLANE_MIGRATION_DEVICE_PRECOPY: "false" }),
    ]);
    const insecure = credentials.createInsecure();
    return new MigrationBenchHost(
      dataDir,
      interrupts,
      iommu,
      migration,
      new InterruptControllerServiceClient(interrupts.address, insecure),
      new IommuServiceClient(iommu.address, insecure),
      { precopy: endpoint(migration), plain: endpoint(plain) },
    );
  }

  /**
   * Live-migrates `vm` to `destination` with the VMM moving RAM (only device state crosses), with
   * device pre-copy or (`precopy` false) without, and waits for the operation to end; throws
   * unless it completed.
   */
  async migrate(vm: string, destination: MigrationBenchHost, precopy = true): Promise<MigrationResult> {
    const { client, operations } = precopy ? this.out.precopy : this.out.plain;
    const started = performance.now();
    const operation = await unaryCall(
      client.startMigration.bind(client),
      {
        vm,
        destination: destination.migration.address,
        guestMemory: undefined,
        vmmMovesRam: true,
        downtimeLimitMs: 0,
        noProgressTimeoutMs: 0,
        totalTimeoutMs: 0,
        requestId: "",
        destinationGuestMemory: undefined,
      },
      { timeoutMs: 10_000 },
    );
    // WaitOperation rather than polling: nothing else runs in these services while they migrate.
    const done = await unaryCall(
      operations.waitOperation.bind(operations),
      { name: operation.name, timeout: { seconds: 300n, nanos: 0 } },
      { timeoutMs: 310_000 },
    );
    const operationMs = performance.now() - started;
    const progress = OperationProgress.decode(done.metadata!.value);
    if (!done.done || progress.phase !== Phase.PHASE_COMPLETED) {
      throw new Error(
        `migration of ${vm} ended ${Phase[progress.phase]} (failed in ${Phase[progress.failedPhase]}): ${progress.errorCode} ${progress.errorMessage}`,
      );
    }
    return {
      downtimeMs: Number(progress.downtimeUs) / 1000,
      downtimeBoundMs: Number(progress.downtimeBoundUs) / 1000,
      deviceStateBytes: Number(progress.deviceStateBytes),
      precopyBytes: Number(progress.devicePrecopyBytes),
      precopyIterations: progress.devicePrecopyIterations,
      stopCopyBytes: Number(progress.deviceStopCopyBytes),
      downtimeMessages: progress.downtimeMessages,
      dirtyPages: progress.dirtyPages.length,
      operationMs,
    };
  }

  /** One unary gRPC round trip to this host's migration service (GetCapabilities), ms. */
  async roundTrip(): Promise<number> {
    const started = performance.now();
    const { client } = this.out.precopy;
    await unaryCall(client.getCapabilities.bind(client), {}, { timeoutMs: 10_000 });
    return performance.now() - started;
  }

  async stop(): Promise<void> {
    this.interruptClient.close();
    this.iommuClient.close();
    const endpoints = [this.out.precopy, this.out.plain];
    for (const { client, operations } of endpoints) {
      client.close();
      operations.close();
    }
    await Promise.all([
      ...endpoints.map(({ service }) => service.stop()),
      this.interrupts.stop(),
      this.iommu.stop(),
    ]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
