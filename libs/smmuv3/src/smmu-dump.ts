import type { SmmuFeatures } from "./features.js";
import type { EventQueue } from "./event-queue.js";
import type { Iotlb } from "./iotlb.js";
import type { PageRequest, PageRequestQueue } from "./page-request-queue.js";
import type { MsiBinding, Stage2Domain, Stage2Mapping } from "./stage2-domain.js";
import type { GuestStage1 } from "./stream-table-entry.js";
import type { DeviceBinding } from "./smmu-device.js";

/** A snapshot of an SMMU's configuration and caches, for dumps and debugging. */
export interface SmmuDump {
  vmid: number;
  features: SmmuFeatures;
  stage2: {
    granuleBits: number;
    ipaBits: number;
    startLevel: number;
    tables: number;
    mappings: Stage2Mapping[];
  };
  msiBinding: MsiBinding | undefined;
  pasidTable: GuestStage1 | undefined;
  devices: (DeviceBinding & { cachedContextDescriptors: number })[];
  iotlb: { size: number; capacity: number; hits: number; misses: number };
  events: { queued: number; nextSequence: number; dropped: number };
  pageRequests: PageRequest[];
  quiesced: boolean;
}

/** The blocks of an SMMU a dump reads (Smmu.dump hands them in). */
export interface SmmuDumpParts {
  features: SmmuFeatures;
  domain: Stage2Domain;
  iotlb: Iotlb;
  events: EventQueue;
  pageRequests: PageRequestQueue;
  pasidTable: GuestStage1 | undefined;
  devices: (DeviceBinding & { cachedContextDescriptors: number })[];
  quiesced: boolean;
}

/** The dump of an SMMU (copies: later changes to the SMMU do not show in it). */
export function dumpSmmu(p: SmmuDumpParts): SmmuDump {
  const { domain, iotlb, events } = p;
  return {
    vmid: domain.vmid,
    features: { ...p.features },
    stage2: {
      granuleBits: domain.granuleBits,
      ipaBits: domain.ipaBits,
      startLevel: domain.table.startLevel,
      tables: domain.table.tableCount,
      mappings: domain.mappings.map((m) => ({ ...m })),
    },
    msiBinding: domain.msiBinding ? { ...domain.msiBinding } : undefined,
    pasidTable: p.pasidTable,
    devices: p.devices,
    iotlb: {
      size: iotlb.size,
      capacity: iotlb.capacity,
      hits: iotlb.hits,
      misses: iotlb.misses,
    },
    events: {
      queued: events.length,
      nextSequence: events.sequence,
      dropped: events.dropped,
    },
    pageRequests: p.pageRequests.list(),
    quiesced: p.quiesced,
  };
}
