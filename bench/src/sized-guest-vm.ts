// A VM of a given size on a benchmark host, built as a VMM and its guest build one, through the
// services' own RPCs: the interrupt controller's batched configuration calls and hypercalls, and
// an SMMU with one device per StreamID.
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, EsbPage } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { unaryCall } from "@vplane/service-kit";
import { HcallOpcode, QUEUE_ALWAYS_NOTIFY, encodeKvmSourceConfig } from "@vplane/xive";
import type { MigrationBenchHost } from "./migration-bench-host.js";

/** What building a VM needs of a host: its interrupt-controller and IOMMU clients. */
type ServiceClients = Pick<MigrationBenchHost, "interruptClient" | "iommuClient">;

export interface VmSize {
  sources: number;
  vcpus: number;
  streamIds: number;
}

/**
 * Queues per vCPU the service lets a guest have: KVM's EQ_CONFIG refuses priority 7 (xive.md §1.2)
 * and the H_INT_* hypercalls reserve priorities at or above hv-prio, 7 on sPAPR (§2, §7), which
 * CreateController does not change. The issue counts 8 (the model-only xive-migration bench gets
 * them with hv-prio 8).
 */
export const QUEUES_PER_VCPU = 7;
const QUEUE_SHIFT = 16;
/** Sources the guest enables through their ESB page (one RPC each); a quarter get an event. */
const ENABLED_SOURCES = 8192;
/** Calls in flight while setting a VM up. */
const SETUP_CONCURRENCY = 64;

const ESB_SET_PQ_00 = 0xc00;
/** TIMA OS ring CPPR byte (page 2, QW1 + 1). */
const TIMA_OS_CPPR = 0x2_0011;

async function inFlight(count: number, limit: number, task: (index: number) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

function ranges(count: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let start = 0; start < count; start += size) out.push([start, Math.min(count, start + size)]);
  return out;
}

/** Guest RAM holding every queue: one 64 KiB page per (vCPU, priority 0..7), at least 16 MiB. */
function guestRamBytes(vcpus: number): bigint {
  return BigInt(Math.max(16 * 1024 * 1024, vcpus * 8 * (1 << QUEUE_SHIFT)));
}

/**
 * A XIVE guest of `size` on `host`, as a VMM and its guest build it: the controller (private RAM,
 * NR_SERVERS = vCPUs), every vCPU connected, the guest's CAS choice, the sources (InitSources and
 * ConfigureSources in batches of 4,096: MSIs spread over the vCPUs and priorities 0..6), one
 * queue per vCPU and priority (H_INT_SET_QUEUE_CONFIG through RawHypercall), CPPR 0xFF on every
 * vCPU, the first sources enabled (ESB SET_PQ_00) and a quarter of those triggered, so events sit
 * in queues and IPBs. Then the VM's SMMU: stage 2 over the RAM and one device per StreamID with a
 * stage-1 guest STE.
 */
export async function buildVm(host: ServiceClients, vm: string, size: VmSize): Promise<void> {
  const client = host.interruptClient;
  const name = `vms/${vm}/controller`;
  const ram = guestRamBytes(size.vcpus);
  const firstIrq = size.sources + 0x1000 <= 1 << 20 ? 0x1000 : 0;
  await unaryCall(client.createController.bind(client), {
    controller: {
      name: "",
      vm,
      mode: ControllerMode.CONTROLLER_MODE_XIVE,
      activeMode: ActiveMode.ACTIVE_MODE_UNSPECIFIED,
      nrServers: Math.max(1, size.vcpus),
      backend: Backend.BACKEND_EMULATED,
      guestMemory: { path: "", sizeBytes: ram },
      connectedServers: [],
      sourceCount: 0,
      createTime: undefined,
      nrIrqs: firstIrq + Math.max(1, size.sources),
    },
    requestId: "",
  });
  await inFlight(size.vcpus, SETUP_CONCURRENCY, (vcpu) =>
    unaryCall(client.connectVcpu.bind(client), { name, vcpuId: vcpu, server: vcpu, requestId: "" }),
  );
  await unaryCall(client.selectMode.bind(client), { name, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
  for (const [start, end] of ranges(size.sources, 4096)) {
    const irqs = Array.from({ length: end - start }, (_, i) => firstIrq + start + i);
    await unaryCall(client.initSources.bind(client), {
      name,
      sources: irqs.map((irq) => ({ irq, levelSensitive: false, asserted: false })),
      requestId: "",
    });
  }
  await inFlight(size.vcpus * QUEUES_PER_VCPU, SETUP_CONCURRENCY, async (i) => {
    const vcpu = Math.floor(i / QUEUES_PER_VCPU);
    const priority = i % QUEUES_PER_VCPU;
    const qaddr = BigInt(vcpu * 8 + priority) << BigInt(QUEUE_SHIFT);
    await unaryCall(client.rawHypercall.bind(client), {
      name,
      server: vcpu,
      opcode: BigInt(HcallOpcode.H_INT_SET_QUEUE_CONFIG),
      args: [QUEUE_ALWAYS_NOTIFY, BigInt(vcpu), BigInt(priority), qaddr, BigInt(QUEUE_SHIFT)],
      failOnError: true,
    });
  });
  for (const [start, end] of ranges(size.sources, 4096)) {
    const sources = Array.from({ length: end - start }, (_, i) => {
      const irq = firstIrq + start + i;
      const n = start + i;
      const config = { server: n % size.vcpus, priority: n % QUEUES_PER_VCPU, masked: false, eisn: irq };
      return { irq, kvmConfig: encodeKvmSourceConfig(config) };
    });
    await unaryCall(client.configureSources.bind(client), { name, sources, requestId: "" });
  }
  await inFlight(size.vcpus, SETUP_CONCURRENCY, (vcpu) =>
    unaryCall(client.timaAccess.bind(client), {
      name,
      server: vcpu,
      offset: TIMA_OS_CPPR,
      size: 1,
      kind: AccessKind.ACCESS_KIND_STORE,
      value: 0xffn,
    }),
  );
  const enabled = Math.min(size.sources, ENABLED_SOURCES);
  await inFlight(enabled, SETUP_CONCURRENCY, (n) =>
    unaryCall(client.esbAccess.bind(client), {
      name,
      irq: firstIrq + n,
      page: EsbPage.ESB_PAGE_MANAGEMENT,
      offset: ESB_SET_PQ_00,
      size: 8,
      kind: AccessKind.ACCESS_KIND_LOAD,
      value: 0n,
    }),
  );
  const triggered = Array.from({ length: Math.ceil(enabled / 4) }, (_, i) => firstIrq + 4 * i);
  if (triggered.length > 0) await unaryCall(client.triggerSources.bind(client), { name, irqs: triggered });
  await buildSmmu(host, vm, ram, size.streamIds);
}

/** An SMMU of `vm` with stage 2 identity-mapping its RAM and `streamIds` devices, each with a stage-1 STE. */
async function buildSmmu(host: ServiceClients, vm: string, ram: bigint, streamIds: number) {
  const client = host.iommuClient;
  const { smmu } = await unaryCall(client.createSmmu.bind(client), {
    smmu: {
      name: "",
      vm,
      smmuId: "smmu0",
      backend: Backend.BACKEND_EMULATED,
      features: undefined,
      guestMemory: { path: "", sizeBytes: ram },
      vmid: 0,
      createTime: undefined,
      stage2GranuleBytes: 0,
      eventQueueDepth: 0,
      pageRequestTimeoutMs: 0,
    },
    requestId: "",
  });
  const name = smmu!.name;
  await unaryCall(client.mapStage2.bind(client), {
    name,
    mapping: {
      ipa: 0n,
      hostAddress: 0n,
      size: ram,
      permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
    },
    requestId: "",
  });
  // STE word 0: V, Config 5 (stage 1), S1ContextPtr at the top page of RAM (one CD shared).
  const ste0 = 1n | (5n << 1n) | (ram - 4096n);
  await inFlight(streamIds, SETUP_CONCURRENCY, async (i) => {
    const streamId = 0x100 + i;
    await unaryCall(client.attachDevice.bind(client), {
      name,
      streamId,
      virtualStreamId: i,
      pageRequests: false,
      requestId: "",
    });
    await unaryCall(client.attachPasidTable.bind(client), {
      name,
      form: { $case: "guestSte", value: { streamId, ste0, ste1: 0n, flags: 0 } },
      requestId: "",
    });
  });
}

/** Removes the VM from the host it ended on. */
export async function deleteVm(host: ServiceClients, vm: string): Promise<void> {
  const client = host.interruptClient;
  await unaryCall(client.deleteController.bind(client), { name: `vms/${vm}/controller`, requestId: "" });
  const iommu = host.iommuClient;
  await unaryCall(iommu.deleteSmmu.bind(iommu), { name: `vms/${vm}/smmus/smmu0`, requestId: "" });
}
