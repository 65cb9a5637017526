// One host for the migration tests: a migration service in this process, with two fake device
// services (interrupt controller and IOMMU) and its own data folder.
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { credentials } from "@grpc/grpc-js";
import { OperationsClient, type Operation } from "@vplane/proto/gen/google/longrunning/operations";
import { OperationProgress, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import type { StartMigrationRequest } from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";
import { migrationDescription } from "../src/migration-service.js";
import { FakeDevices } from "./fake-device-service.js";

export class TestHost {
  readonly dataDir = mkdtempSync(join(tmpdir(), "vplane-migration-"));
  interrupts!: FakeDevices;
  iommu!: FakeDevices;
  migration!: ServiceUnderTest;
  client!: MigrationServiceClient;
  operations!: OperationsClient;
  private env: Record<string, string> = {};

  static async start(env: Record<string, string> = {}): Promise<TestHost> {
    const host = new TestHost();
    await host.startWith({ env });
    return host;
  }

  /** Starts the fakes and the migration service; `interruptTarget` replaces the interrupt fake. */
  async startWith(options: { env?: Record<string, string>; interruptTarget?: string }): Promise<void> {
    this.interrupts = await new FakeDevices("xive").start();
    this.iommu = await new FakeDevices("smmuv3").start();
    this.env = {
      VPLANE_DATA_DIR: this.dataDir,
      VPLANE_MIGRATION_INTERRUPT_TARGET: options.interruptTarget ?? this.interrupts.service.address,
      VPLANE_MIGRATION_IOMMU_TARGET: this.iommu.service.address,
      VPLANE_MIGRATION_RAM_CHUNK_BYTES: "65536",
      ...options.env,
    };
    await this.startMigrationService();
  }

  /** Stops the migration service alone and starts it again (same data folder and devices). */
  async restartMigrationService(): Promise<void> {
    this.client.close();
    this.operations.close();
    await this.migration.stop(0);
    await this.startMigrationService();
  }

  private async startMigrationService(): Promise<void> {
    this.migration = await startServiceForTests(migrationDescription, this.env);
    this.client = new MigrationServiceClient(this.migration.address, credentials.createInsecure());
    this.operations = new OperationsClient(this.migration.address, credentials.createInsecure());
  }

  /** A running VM: devices on both fake services and a RAM file of `ramBytes` random bytes. */
  addVm(vm: string, ramBytes = 256 * 1024): { path: string; sizeBytes: bigint; ram: Buffer } {
    this.interrupts.vms.set(vm, {
      payload: Buffer.from(`xive-state-of-${vm}`),
      changes: [],
      quiesced: false,
      dirtyPages: [0x1000n],
      guestMemoryPath: "",
    });
    this.iommu.vms.set(vm, {
      payload: Buffer.from(`smmu-state-of-${vm}`),
      changes: [],
      quiesced: false,
      dirtyPages: [],
      guestMemoryPath: "",
    });
    mkdirSync(join(this.dataDir, "guest-ram"), { recursive: true });
    const ram = randomBytes(ramBytes);
    const path = join("guest-ram", `${vm}.ram`);
    writeFileSync(join(this.dataDir, path), ram);
    return { path, sizeBytes: BigInt(ramBytes), ram };
  }

  /** StartMigration from this host, every option not given at its default (RAM copied by us). */
  startMigration(
    request: Pick<StartMigrationRequest, "vm" | "destination"> & Partial<StartMigrationRequest>,
  ) {
    return unaryCall(
      this.client.startMigration.bind(this.client),
      {
        guestMemory: undefined,
        vmmMovesRam: false,
        downtimeLimitMs: 0,
        noProgressTimeoutMs: 0,
        totalTimeoutMs: 0,
        requestId: "",
        destinationGuestMemory: undefined,
        ...request,
      },
      { timeoutMs: 5000 },
    );
  }

  /** Waits for the operation to end; its final progress. */
  async finish(operation: Operation): Promise<{ operation: Operation; progress: OperationProgress }> {
    for (;;) {
      const current = await unaryCall(
        this.operations.getOperation.bind(this.operations),
        { name: operation.name },
        { timeoutMs: 5000 },
      );
      if (current.done)
        return { operation: current, progress: OperationProgress.decode(current.metadata!.value) };
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves once the operation has reached `phase`. */
  async reach(operation: Operation, phase: Phase): Promise<void> {
    for (;;) {
      const current = await unaryCall(
        this.operations.getOperation.bind(this.operations),
        { name: operation.name },
        { timeoutMs: 5000 },
      );
      const progress = OperationProgress.decode(current.metadata!.value);
      if (progress.phase === phase) return;
      if (current.done) throw new Error(`operation ended in ${Phase[progress.phase]} before ${Phase[phase]}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    this.client.close();
    this.operations.close();
    await Promise.all([
      this.migration.stop(500),
      this.interrupts.service.stop(500),
      this.iommu.service.stop(500),
    ]);
  }
}
