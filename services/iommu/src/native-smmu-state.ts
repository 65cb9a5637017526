import {
  DEFAULT_LIMITS,
  SmmuError,
  type EventState,
  type SmmuFeatures,
  type SmmuState,
} from "@vplane/smmuv3";
import type { NativeDelivery } from "./native-event-stream.js";

/** What a native SMMU knows of itself: the configuration it gave the kernel, and its stream. */
export interface NativeSmmuSnapshot {
  features: SmmuFeatures;
  eventQueueDepth: number;
  pageRequestTimeoutMs: number;
  guestMemoryBytes: number;
  mappings: SmmuState["mappings"];
  devices: SmmuState["devices"];
  stream: {
    nextSequence: number;
    eventsReported: number;
    eventsDropped: number;
    /** Messages handed to the event stream so far. */
    delivered: number;
    held: readonly NativeDelivery[];
  };
}

/**
 * A native SMMU's state in the format every backend shares (libs/smmuv3 device-state): the
 * stage-2 mappings and devices (with the guest STE words as given) it configured, the events it
 * holds undelivered while quiesced, the stream's counters. No seed PASID table and no MSI
 * binding exist on a native SMMU; the kernel's outstanding page requests are not exported
 * (quiesce refuses while any is outstanding, see NativeSmmuBackend.quiesce).
 */
export function nativeSmmuState(s: NativeSmmuSnapshot): SmmuState {
  const events: EventState[] = s.stream.held.flatMap((d): EventState[] => {
    if (d.kind !== "event") return [];
    return d.queued.lost
      ? [{ sequence: d.queued.sequence, lost: true }]
      : [{ sequence: d.queued.sequence, lost: false, event: d.queued.event }];
  });
  return {
    features: { ...s.features },
    stage2GranuleBits: 12,
    eventQueueDepth: s.eventQueueDepth,
    pageRequestCapacity: DEFAULT_LIMITS.pageRequests,
    pageRequestTimeoutMs: s.pageRequestTimeoutMs,
    guestMemoryBytes: s.guestMemoryBytes,
    eventSequence: s.stream.nextSequence,
    nextCookie: 0,
    eventsReported: s.stream.eventsReported,
    eventsDropped: s.stream.eventsDropped,
    delivered: s.stream.delivered,
    pasidTable: undefined,
    msi: undefined,
    mappings: s.mappings.map((m) => ({ ...m })),
    devices: s.devices.map((d) => ({ ...d })),
    events,
    pageRequests: [],
  };
}

const refuse = (reason: string, message: string, field: string) =>
  new SmmuError({ code: "FAILED_PRECONDITION", reason, message, field });

/**
 * What a native SMMU cannot take from an exported state, checked before anything is made: a
 * seed PASID table or MSI binding (no iommufd form), page requests waiting for an answer (the
 * kernel's fault queue cannot be given requests), other features than this host's SMMU has
 * (the guest would see its SMMU change), another guest RAM size.
 */
export function checkImportableOnNative(
  state: SmmuState,
  host: { features: SmmuFeatures; guestMemoryBytes: number },
): void {
  if (state.pasidTable) {
    throw refuse(
      "SEED_PASID_TABLE_NOT_NATIVE",
      "the state holds a seed-form PASID table, which has no iommufd form (VFIO_IOMMU_SET_PASID_TABLE never reached mainline)",
      "pasid_table",
    );
  }
  if (state.msi) {
    throw refuse(
      "MSI_DOORBELL_KERNEL_MANAGED",
      "the state binds an MSI doorbell; on a native SMMU iommufd maps the host's doorbell itself",
      "msi",
    );
  }
  if (state.pageRequests.length > 0) {
    throw refuse(
      "PAGE_REQUESTS_OUTSTANDING",
      `${state.pageRequests.length} page request(s) wait for an answer; the kernel's fault queue cannot be given them: answer them on the source first`,
      "page_requests",
    );
  }
  const differing = (Object.keys(host.features) as (keyof SmmuFeatures)[]).filter(
    (k) => host.features[k] !== state.features[k],
  );
  if (differing.length > 0) {
    throw refuse(
      "FEATURES_DIFFER",
      `the exported SMMU advertised other features than this host's SMMU has (${differing
        .map((k) => `${k}: ${String(state.features[k])} there, ${String(host.features[k])} here`)
        .join(", ")})`,
      "features",
    );
  }
  if (state.guestMemoryBytes !== host.guestMemoryBytes) {
    throw refuse(
      "GUEST_MEMORY_SIZE_MISMATCH",
      `the state was exported with ${state.guestMemoryBytes} bytes of guest RAM, this RAM has ${host.guestMemoryBytes}`,
      "guest_memory_bytes",
    );
  }
}
