// The iommu service's own handlers on the real kernel (issue 13 points 2 and 3): a NATIVE SMMU made
// by CreateSmmu on fds the service opens itself (standalone) or a VMM hands over (the handoff
// socket), the VMM leaving, and migration native ↔ emulated through the DeviceStateService. Two
// service instances share this guest, as two hosts would share a migration: A serves NATIVE SMMUs
// on the handoff socket, B EMULATED ones; both map the same tmpfs RAM file. Each scenario returns
// what a VMM or an orchestrator observes; the host's test states the rules and checks them.
import { readFileSync } from "node:fs";
import { FileGuestMemory } from "@vplane/guest-memory";
import {
  closeFd,
  connectUnix,
  nextHandoffMessage,
  openDevice,
  sendHandoffMessage,
} from "@vplane/host-kernel";
import {
  IommuMetrics,
  SmmuHandoffServer,
  SmmuRegistry,
  hostVfioDevices,
  smmuConfigHandlers,
  smmuCrudHandlers,
  smmuDataHandlers,
  smmuVmDevices,
} from "@vplane/iommu/native";
import {
  CD_IPA,
  CONTRACT_RAM_BYTES,
  GuestTables,
  IOVA_A,
  IOVA_B,
  PAGE_A,
  PAGE_B,
  PAGE_C,
  TABLES_IPA,
  VSID,
  steWords,
} from "@vplane/iommu/testing";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { ServiceMetrics, createLogger, deviceStateHandlers } from "@vplane/service-kit";
import { SqliteStore } from "@vplane/store";
import { EduDevice } from "./edu-device.js";

const RAM_PATH = "/tmp/vm-ram";
const RAM = { path: RAM_PATH, sizeBytes: BigInt(CONTRACT_RAM_BYTES) };
const SOCKET = "/tmp/iommu-handoff.sock";
const IOVA_C = 0x200_2000;
/** What edu copies in every DMA of these scenarios: the text found at the target says the DMA went through. */
export const DMA_PATTERN = "vplane: a DMA through the guest's stage 1 and the host's stage 2";
const PATTERN = Buffer.from(DMA_PATTERN);

/** One iommu service's handlers over its own registry and store, as iommu-service.ts wires them. */
function service(dataDir: string, handoff?: SmmuHandoffServer) {
  const registry = new SmmuRegistry(new SqliteStore(`${dataDir}/iommu.db`), {
    dataDir,
    maxSmmus: 16,
    log: createLogger({ name: "iommu", level: "silent" }),
    ...(handoff ? { handedOver: (name: string) => handoff.smmu(name) } : {}),
  });
  return {
    registry,
    crud: smmuCrudHandlers(registry, dataDir),
    config: smmuConfigHandlers(registry),
    data: smmuDataHandlers(registry, new IommuMetrics(new ServiceMetrics())),
    state: deviceStateHandlers(smmuVmDevices(registry, dataDir), "iommu"),
  };
}
type Service = ReturnType<typeof service>;

/** What a failed call answers (code, reason, errno, field), or "ok". */
async function outcome(call: () => unknown): Promise<unknown> {
  try {
    await call();
    return "ok";
  } catch (error) {
    const e = error as { code?: string; reason?: string; errno?: number; field?: string; message: string };
    if (!e.code) throw error;
    return { code: e.code, reason: e.reason, errno: e.errno ?? null, field: e.field ?? null };
  }
}

const smmuSpec = (vm: string, backend: Backend) => ({
  name: "",
  vm,
  smmuId: "s0",
  backend,
  features: undefined,
  guestMemory: RAM,
  vmid: 0,
  createTime: undefined,
  stage2GranuleBytes: 0,
  eventQueueDepth: 0,
  pageRequestTimeoutMs: 0,
});

/** A VMM of this guest: its own iommufd and edu's cdev, handed over to service A for one SMMU. */
class Vmm {
  readonly iommufd = openDevice("/dev/iommu");
  readonly deviceFd: number;
  readonly streamId: number;
  private readonly connection: number;
  private edu: EduDevice | undefined;

  private constructor() {
    const [device] = hostVfioDevices();
    if (!device) throw new Error("no VFIO device cdev in the guest");
    this.streamId = device.streamId;
    this.deviceFd = openDevice(device.cdev);
    this.connection = connectUnix(SOCKET);
  }

  static async handOver(vm: string): Promise<{ vmm: Vmm; answer: unknown }> {
    const vmm = new Vmm();
    sendHandoffMessage(
      vmm.connection,
      { type: "adopt", version: 1, vm, smmu: "s0", iommufd: 0, devices: [{ streamId: vmm.streamId, fd: 1 }] },
      [vmm.iommufd, vmm.deviceFd],
    );
    return { vmm, answer: await vmm.next() };
  }

  async next(): Promise<unknown> {
    const m = await nextHandoffMessage(this.connection);
    return m === "closed" ? "closed" : m.message;
  }

  /** edu copies PATTERN from IOVA `source` to `target` with its own fd (bound by the service's SMMU). */
  async copy(source: number, target: number): Promise<void> {
    this.edu ??= new EduDevice(this.deviceFd);
    await this.edu.readFromRam(BigInt(source), PATTERN.length);
    await this.edu.writeToRam(BigInt(target), PATTERN.length);
  }

  /** The VMM exits: every fd it had closes. */
  leave(): void {
    this.edu?.close();
    for (const fd of [this.connection, this.deviceFd, this.iommufd]) closeFd(fd);
  }
}

/** Stage 2: the whole RAM file at IPA 0, read-write. */
async function mapAllRam(s: Service, name: string): Promise<void> {
  await s.config.mapStage2({
    name,
    mapping: {
      ipa: 0n,
      hostAddress: 0n,
      size: RAM.sizeBytes,
      permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
    },
    requestId: "",
  });
}

/** RAM at IPA 0 (identity), edu bound as VSID, the guest's stage 1 (IOVA_A → PAGE_A, …) and its STE. */
async function bootGuestSmmu(
  s: Service,
  name: string,
  streamId: number,
  memory: FileGuestMemory,
): Promise<void> {
  await mapAllRam(s, name);
  await s.config.attachDevice({ name, streamId, virtualStreamId: VSID, pageRequests: false, requestId: "" });
  const tables = new GuestTables(memory, TABLES_IPA);
  tables.map(IOVA_A, PAGE_A);
  tables.map(IOVA_B, PAGE_B);
  tables.map(IOVA_C, PAGE_C);
  tables.writeCd(CD_IPA, 1);
  await s.config.attachPasidTable({
    name,
    form: { $case: "guestSte", value: { streamId, ...steWords(5, CD_IPA), flags: 0 } },
    requestId: "",
  });
}

const ramAt = (address: number) =>
  readFileSync(RAM_PATH)
    .subarray(address, address + PATTERN.length)
    .toString("utf8");

/** Scenario name → what it observed. */
export async function runServiceScenarios(): Promise<Record<string, unknown>> {
  const memory = new FileGuestMemory(RAM_PATH, CONTRACT_RAM_BYTES);
  const handoff = SmmuHandoffServer.listen(SOCKET);
  const a = service("/tmp/iommu-a", handoff);
  const b = service("/tmp/iommu-b");
  const results: Record<string, unknown> = {};
  try {
    results.standalone = await standalone(service("/tmp/iommu-standalone"));
    results.handoff = await handedOver(a, memory);
    results.migration = await migration(a, b, memory);
  } finally {
    for (const s of [a, b]) s.registry.closeAll();
    handoff.close();
    memory.close();
  }
  return results;
}

/** Without a handoff socket the service opens /dev/iommu and the VFIO cdevs itself; a deleted SMMU gives the device back. */
async function standalone(s: Service): Promise<unknown> {
  const created = await s.crud.createSmmu({ smmu: smmuSpec("solo", Backend.BACKEND_NATIVE), requestId: "" });
  const name = created.smmu!.name;
  const second = await outcome(() =>
    s.crud.createSmmu({ smmu: { ...smmuSpec("solo", Backend.BACKEND_NATIVE), smmuId: "s1" }, requestId: "" }),
  );
  await s.crud.deleteSmmu({ name, requestId: "" });
  const again = await outcome(() =>
    s.crud.createSmmu({ smmu: smmuSpec("solo", Backend.BACKEND_NATIVE), requestId: "" }),
  );
  await s.crud.deleteSmmu({ name, requestId: "" });
  const noRam = await outcome(() =>
    s.crud.createSmmu({
      smmu: { ...smmuSpec("solo", Backend.BACKEND_NATIVE), guestMemory: undefined },
      requestId: "",
    }),
  );
  s.registry.closeAll();
  return {
    backend: Backend[created.smmu!.backend],
    features: created.smmu!.features,
    secondWhileDeviceBound: second,
    afterDelete: again,
    noRam,
    left: s.crud.listSmmus({ parent: "", pageSize: 0, pageToken: "" }).smmus.length,
  };
}

/** A VMM's fds: refused without them, made on them, the VMM's own DMA through it, then the VMM leaves. */
async function handedOver(a: Service, memory: FileGuestMemory): Promise<unknown> {
  const missing = await outcome(() =>
    a.crud.createSmmu({ smmu: smmuSpec("web", Backend.BACKEND_NATIVE), requestId: "" }),
  );
  const { vmm, answer } = await Vmm.handOver("web");
  const created = await a.crud.createSmmu({ smmu: smmuSpec("web", Backend.BACKEND_NATIVE), requestId: "" });
  const name = created.smmu!.name;
  await mapAllRam(a, name);
  await a.config.attachDevice({
    name,
    streamId: vmm.streamId,
    virtualStreamId: VSID,
    pageRequests: false,
    requestId: "",
  });
  // Stage 2 only: the device's IOVA is the IPA.
  memory.write(PAGE_A, PATTERN);
  await vmm.copy(PAGE_A, PAGE_C);
  const dma = ramAt(PAGE_C);
  vmm.leave();
  await new Promise((resolve) => setTimeout(resolve, 200)); // the service sees the hang-up on its event loop
  const afterGone = {
    mapStage2: await outcome(() =>
      a.config.mapStage2({
        name,
        mapping: {
          ipa: 0x200_0000n,
          hostAddress: 0n,
          size: 0x1000n,
          permission: Stage2Permission.STAGE2_PERMISSION_READ,
        },
        requestId: "",
      }),
    ),
    detachDevice: await outcome(() => a.config.detachDevice({ name, streamId: vmm.streamId, requestId: "" })),
    quiesce: await outcome(() => a.state.quiesceDevices({ vm: "web" })),
    getSmmu: await outcome(() => a.crud.getSmmu({ name })),
    deleteSmmu: await outcome(() => a.crud.deleteSmmu({ name, requestId: "" })),
  };
  return {
    withoutHandoff: missing,
    handoffAnswer: answer,
    backend: Backend[created.smmu!.backend],
    dma,
    afterGone,
    left: a.crud.listSmmus({ parent: "", pageSize: 0, pageToken: "" }).smmus.length,
  };
}

/** native (A) → emulated (B) → native (A) through the DeviceStateService, the guest's DMA checked on each side. */
async function migration(a: Service, b: Service, memory: FileGuestMemory): Promise<unknown> {
  const name = "vms/mig/smmus/s0";
  const first = await Vmm.handOver("mig");
  await a.crud.createSmmu({ smmu: smmuSpec("mig", Backend.BACKEND_NATIVE), requestId: "" });
  await bootGuestSmmu(a, name, first.vmm.streamId, memory);
  memory.write(PAGE_A, PATTERN);
  await first.vmm.copy(IOVA_A, IOVA_B);
  const nativeDma = ramAt(PAGE_B);

  // native → emulated
  a.state.quiesceDevices({ vm: "mig" });
  const fromNative: DeviceSection[] = a.state.exportDeviceState({ vm: "mig" }).sections;
  const intoEmulated = await b.state.importDeviceState({
    vm: "mig",
    sections: fromNative,
    guestMemory: RAM,
    requestId: "",
    backend: Backend.BACKEND_EMULATED,
  });
  b.state.resumeDevices({ vm: "mig" });
  const emulated = b.crud.getSmmu({ name });
  const translated = b.data.translate({
    name,
    streamId: first.vmm.streamId,
    iova: BigInt(IOVA_B),
    write: true,
  });
  await a.state.releaseDevices({ vm: "mig" });
  const released = await first.vmm.next();
  const closed = await first.vmm.next();
  first.vmm.leave();

  // emulated → native: the VMM hands fresh fds over on the destination
  b.state.quiesceDevices({ vm: "mig" });
  const fromEmulated = b.state.exportDeviceState({ vm: "mig" }).sections;
  const second = await Vmm.handOver("mig");
  const intoNative = await a.state.importDeviceState({
    vm: "mig",
    sections: fromEmulated,
    guestMemory: RAM,
    requestId: "",
    backend: Backend.BACKEND_NATIVE,
  });
  a.state.resumeDevices({ vm: "mig" });
  const native = a.crud.getSmmu({ name });
  memory.write(PAGE_A, Buffer.alloc(PATTERN.length));
  memory.write(PAGE_C, Buffer.alloc(PATTERN.length));
  memory.write(PAGE_B, PATTERN);
  await second.vmm.copy(IOVA_B, IOVA_C);
  const nativeAgainDma = ramAt(PAGE_C);
  await b.state.releaseDevices({ vm: "mig" });

  // A state the host's SMMU cannot take is refused whole: nothing made, the VMM's fds released.
  a.state.quiesceDevices({ vm: "mig" });
  const [section] = a.state.exportDeviceState({ vm: "mig" }).sections;
  await a.state.releaseDevices({ vm: "mig" });
  second.vmm.leave();
  const third = await Vmm.handOver("mig");
  const withMsi = await msiBound(b, section!);
  const refused = await outcome(() =>
    a.state.importDeviceState({
      vm: "mig",
      sections: [withMsi],
      guestMemory: RAM,
      requestId: "",
      backend: Backend.BACKEND_NATIVE,
    }),
  );
  const refusedRelease = await third.vmm.next();
  third.vmm.leave();
  await b.state.releaseDevices({ vm: "mig" });
  return {
    nativeDma,
    toEmulated: {
      devices: intoEmulated.devices,
      backend: Backend[emulated.smmu!.backend],
      translated: { outcome: translated.outcome, address: Number(translated.address) },
      sourceReleased: [released, closed],
    },
    toNative: {
      devices: intoNative.devices,
      backend: Backend[native.smmu!.backend],
      dma: nativeAgainDma,
    },
    refused: {
      outcome: refused,
      vmmTold: (refusedRelease as { type?: string }).type ?? refusedRelease,
      left: a.crud.listSmmus({ parent: "", pageSize: 0, pageToken: "" }).smmus.length,
    },
  };
}

/** The native SMMU's state with an MSI doorbell bound (imported emulated on B, bound, exported). */
async function msiBound(b: Service, section: DeviceSection): Promise<DeviceSection> {
  await b.state.importDeviceState({
    vm: "mig",
    sections: [section],
    guestMemory: RAM,
    requestId: "",
    backend: Backend.BACKEND_EMULATED,
  });
  b.state.resumeDevices({ vm: "mig" });
  await b.config.bindMsi({
    name: section.device,
    binding: { iova: 0xfef0_0000n, gpa: 0x0800_0000n, size: 0x1000n },
    requestId: "",
  });
  b.state.quiesceDevices({ vm: "mig" });
  return b.state.exportDeviceState({ vm: "mig" }).sections[0]!;
}
