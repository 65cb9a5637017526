// One host's real services, as an embedded host runs them: interrupt-controller and iommu in this
// process, migration as its own process (so a test can crash it), sharing one data folder (guest
// RAM files, the services' stores), the migration service pointed at the other two. Where the iommu service does not serve
// DeviceStateService (builds from before it landed), the migration service's IOMMU side is a
// stand-in that holds no device of any VM (NOT_FOUND, as the migration service expects from a
// service without devices of that VM) and test VMs get no SMMUs (realIommuDeviceState false).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import {
  DeviceStateServiceClient,
  DeviceStateServiceService,
  type DeviceStateServiceServer,
} from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { VplaneError, unaryCall, type ServiceDescription } from "@vplane/service-kit";
import {
  spawnServiceProcess,
  startServiceForTests,
  type ServiceProcess,
  type ServiceUnderTest,
} from "@vplane/service-kit/testing";

/** DeviceStateService of a service that has no device of any VM: every method answers NOT_FOUND. */
const noDeviceState: ServiceDescription<Record<string, never>> = {
  name: "no-device-state",
  envPrefix: "NO_DEVICE_STATE",
  defaultPort: 0,
  options: {},
  start: ({ handlers }) => {
    const noDevices = (vm: string) =>
      new VplaneError({ code: "NOT_FOUND", reason: "VM_NOT_FOUND", message: `no devices of ${vm}` });
    const none = handlers.unary(({ vm }: { vm: string }) => {
      throw noDevices(vm);
    });
    const noStream = handlers.serverStream(({ vm }: { vm: string }) => Promise.reject(noDevices(vm)));
    const noImport = handlers.clientStream(async (requests: AsyncIterable<{ vm: string }>) => {
      for await (const { vm } of requests) throw noDevices(vm);
      throw noDevices("");
    });
    const implementation: DeviceStateServiceServer = {
      quiesceDevices: none,
      exportDeviceState: none,
      importDeviceState: none,
      resumeDevices: none,
      releaseDevices: none,
      readPreCopy: noStream,
      getPreCopyInfo: none,
      stopAndCopy: noStream,
      prepareImport: noImport,
      finishImport: noImport,
    };
    return Promise.resolve({ services: [{ definition: DeviceStateServiceService, implementation }] });
  },
};

/** Whether the service at `address` serves DeviceStateService (UNIMPLEMENTED: not yet). */
async function servesDeviceState(address: string): Promise<boolean> {
  const client = new DeviceStateServiceClient(address, credentials.createInsecure());
  try {
    await unaryCall(client.quiesceDevices.bind(client), { vm: "probe" }, { timeoutMs: 2000 });
    return true;
  } catch (error) {
    return (error as VplaneError).code !== "UNIMPLEMENTED";
  } finally {
    client.close();
  }
}

/** A loopback port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The migration service as its own process (its entry point), so a test can kill it outright. */
function spawnMigration(env: Record<string, string>): Promise<ServiceProcess> {
  return spawnServiceProcess(
    fileURLToPath(new URL("main.js", import.meta.resolve("@vplane/migration"))),
    env,
  );
}

export interface EmbeddedHost {
  name: string;
  dataDir: string;
  addresses: { interruptController: string; iommu: string; migration: string };
  /** True when the migration service moves IOMMU state through the real iommu service. */
  realIommuDeviceState: boolean;
  /** Kills the migration service's process (kill -9) and starts it again on the same address. */
  crashMigration(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a host's services; `env` adds to the migration service's (e.g. its RAM chunk size). */
export async function startEmbeddedHost(
  name: string,
  env: Record<string, string> = {},
): Promise<EmbeddedHost> {
  const dataDir = mkdtempSync(join(tmpdir(), `vplane-${name}-`));
  const base = { VPLANE_DATA_DIR: dataDir };
  const interrupt = await startServiceForTests(interruptControllerDescription, base);
  const iommu = await startServiceForTests(iommuDescription, base);
  const realIommuDeviceState = await servesDeviceState(iommu.address);
  const started: ServiceUnderTest[] = [interrupt, iommu];
  let iommuTarget = iommu.address;
  if (!realIommuDeviceState) {
    const standIn = await startServiceForTests(noDeviceState);
    started.push(standIn);
    iommuTarget = standIn.address;
  }
  const migrationEnv = {
    ...base,
    VPLANE_MIGRATION_INTERRUPT_TARGET: interrupt.address,
    VPLANE_MIGRATION_IOMMU_TARGET: iommuTarget,
    ...env,
  };
  const address = `127.0.0.1:${await freePort()}`;
  let migration = await spawnMigration({ ...migrationEnv, VPLANE_MIGRATION_ADDR: address });
  return {
    name,
    dataDir,
    addresses: { interruptController: interrupt.address, iommu: iommu.address, migration: address },
    realIommuDeviceState,
    async crashMigration() {
      await migration.kill();
      migration = await spawnMigration({ ...migrationEnv, VPLANE_MIGRATION_ADDR: address });
    },
    async stop() {
      await migration.kill();
      for (const service of started.reverse()) await service.stop(500);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
