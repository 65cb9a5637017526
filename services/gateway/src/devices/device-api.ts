// The device endpoints: REST routes that map one-to-one onto the interrupt-controller and iommu
// RPCs an orchestrator drives itself. Each row says which RPC, under which path and method, and
// which request fields come from the path; the request and response bodies are the messages'
// proto3 JSON forms (see proto-json.ts), so the table is all a new RPC needs.

export type DeviceKind = "interrupt-controller" | "iommu";

export const DEVICE_SERVICES: Record<DeviceKind, string> = {
  "interrupt-controller": "vplane.interrupt.v1.InterruptControllerService",
  iommu: "vplane.iommu.v1.IommuService",
};

export interface DeviceRoute {
  kind: DeviceKind;
  rpc: string;
  method: "GET" | "POST" | "PUT";
  /** Under /v1; ":vm" always, ":smmu" for iommu routes. */
  path: string;
  summary: string;
  /** Numeric path parameters copied into request fields of the same JSON name. */
  pathFields?: string[];
}

export interface DeviceStream {
  kind: DeviceKind;
  rpc: string;
  path: string;
  summary: string;
  /** The request field that resumes the stream, and how Last-Event-ID (the last sequence seen) maps onto it. */
  resume: { field: string; fromLastEventId: (lastSeen: bigint) => bigint };
}

const ic = (
  rpc: string,
  method: DeviceRoute["method"],
  path: string,
  summary: string,
  pathFields?: string[],
) =>
  ({
    kind: "interrupt-controller",
    rpc,
    method,
    path: `/vms/:vm${path}`,
    summary,
    ...(pathFields ? { pathFields } : {}),
  }) as const;
const io = (rpc: string, method: DeviceRoute["method"], path: string, summary: string) =>
  ({ kind: "iommu", rpc, method, path: `/vms/:vm/smmus/:smmu${path}`, summary }) as const;

export const DEVICE_ROUTES: readonly DeviceRoute[] = [
  ic("ConnectVcpu", "POST", "/vcpus/connect", "Connect a vCPU to the controller (KVM_CAP_PPC_IRQ_XIVE)"),
  ic(
    "TimaAccess",
    "POST",
    "/vcpus/:server/tima",
    "A vCPU's load or store on the TIMA OS page (e.g. set CPPR at 0x20011)",
    ["server"],
  ),
  ic("InitSources", "POST", "/sources/init", "Initialise a batch of sources (KVM SOURCE attribute)"),
  ic(
    "ConfigureSources",
    "POST",
    "/sources/configure",
    "Configure a batch of sources (KVM SOURCE_CONFIG); the first failure's index is reported. As in KVM, " +
      "each entry that changes a source's server, priority or EISN takes a slot of its queue (16,382 per " +
      "64 KiB queue) and none is returned: with none left, 429 RESOURCE_EXHAUSTED QUEUE_SLOTS_EXHAUSTED, " +
      "which a retry does not cure (give a vCPU without a queue one at that priority, or recreate the VM)" +
      "; NO_QUEUE_AVAILABLE: no vCPU has a queue at that priority",
  ),
  ic("GetSourceConfig", "GET", "/sources/:irq", "A source's state and EAS", ["irq"]),
  ic(
    "EsbAccess",
    "POST",
    "/sources/:irq/esb",
    "A load or store on a source's ESB page (e.g. SET_PQ_00 at 0xC00 enables it)",
    ["irq"],
  ),
  ic("TriggerSources", "POST", "/sources/trigger", "Raise a batch of sources, as a device would (irqfd)"),
  ic("SetLsiLevel", "POST", "/sources/lsi-level", "Set a level-sensitive source's line"),
  ic("ConfigureQueue", "PUT", "/queues/:server/:priority", "Configure an event queue (KVM EQ_CONFIG)", [
    "server",
    "priority",
  ]),
  ic(
    "GetQueueConfig",
    "GET",
    "/queues/:server/:priority",
    "An event queue's config with its live toggle and index",
    ["server", "priority"],
  ),
  ic("SyncQueues", "POST", "/queues/sync", "Sync the event queues (KVM EQ_SYNC); returns the dirty pages"),
  ic(
    "DumpController",
    "GET",
    "/interrupt-controller/dump",
    "A readable dump of the controller, like QEMU's info pic",
  ),
  io(
    "MapStage2",
    "POST",
    "/stage2/map",
    "Map guest-physical memory in the host stage 2 (VFIO MAP_DMA rules)",
  ),
  io("UnmapStage2", "POST", "/stage2/unmap", "Unmap host stage-2 memory (VFIO UNMAP_DMA rules)"),
  io(
    "AttachPasidTable",
    "POST",
    "/pasid-table/attach",
    "Install the guest's stage-1 config: PASID table or guest STE",
  ),
  io("DetachPasidTable", "POST", "/pasid-table/detach", "Remove the guest's stage-1 config"),
  io(
    "Invalidate",
    "POST",
    "/invalidate",
    "A batch of invalidation commands; the first failure's index is reported",
  ),
  io("BindMsi", "POST", "/msi/bind", "Bind the guest's MSI doorbell"),
  io("UnbindMsi", "POST", "/msi/unbind", "Unbind the MSI doorbell"),
  io(
    "Translate",
    "POST",
    "/translate",
    "Translate an IOVA for a StreamID (and SubstreamID) through both stages",
  ),
  io("DmaRead", "POST", "/dma/read", "A device's DMA read through the SMMU (faults become events)"),
  io("RespondPageRequest", "POST", "/page-responses", "Answer a page request"),
  io("DumpSmmu", "GET", "/dump", "A readable dump of the SMMU"),
];

export const DEVICE_STREAMS: readonly DeviceStream[] = [
  {
    kind: "interrupt-controller",
    rpc: "WatchVcpuSignals",
    path: "/vms/:vm/vcpu-signals",
    summary: "vCPU exception lines raised and lowered, as Server-Sent Events (id = sequence)",
    resume: { field: "resumeAfter", fromLastEventId: (lastSeen) => lastSeen },
  },
  {
    kind: "iommu",
    rpc: "StreamEvents",
    path: "/vms/:vm/smmus/:smmu/events",
    summary: "Fault events and page requests of an SMMU, as Server-Sent Events (id = sequence)",
    resume: { field: "fromSequence", fromLastEventId: (lastSeen) => lastSeen + 1n },
  },
];
