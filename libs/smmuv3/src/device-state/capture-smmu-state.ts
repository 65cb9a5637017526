import type { EventQueue } from "../event-queue.js";
import type { SmmuFeatures } from "../features.js";
import type { PageRequestQueue } from "../page-request-queue.js";
import type { DeviceBinding } from "../smmu-device.js";
import type { Stage2Domain } from "../stage2-domain.js";
import type { StreamDelivery } from "../stream-delivery.js";
import type { GuestSte, GuestStage1 } from "../stream-table-entry.js";
import type { DeviceState, SmmuState } from "./smmu-state.js";

/** The blocks of a quiesced SMMU its saved state is captured from (Smmu.exportState hands them in). */
export interface SmmuStateParts {
  features: SmmuFeatures;
  domain: Stage2Domain;
  events: EventQueue;
  pageRequests: PageRequestQueue;
  delivery: StreamDelivery;
  guestMemoryBytes: number;
  pasidTable: GuestStage1 | undefined;
  devices: readonly DeviceBinding[];
  /** The caller's clock when the SMMU stopped: page-request time left is counted from it. */
  stoppedAt: number;
}

/**
 * A quiesced SMMU's state (layout: smmu-state.ts): the features and guest-visible limits, the
 * stage-2 mappings and MSI binding, the devices with their guest STEs as the guest gave them,
 * the seed PASID table, the event queue, and the outstanding page requests with the time each
 * had left and whether it was still held. Caches are not part of it.
 */
export function captureSmmuState(p: SmmuStateParts): SmmuState {
  return {
    ...captureSmmuRuntime(p),
    mappings: p.domain.mappings.map((m) => ({ ...m })),
    devices: [...p.devices].sort((a, b) => a.streamId - b.streamId).map(deviceStateOf),
  };
}

/** A device's record in the state. */
export function deviceStateOf(d: DeviceBinding): DeviceState {
  return {
    streamId: d.streamId,
    virtualStreamId: d.virtualStreamId,
    pageRequests: d.pageRequests,
    guestSte: d.guestSte && guestSteAsGiven(d.guestSte),
  };
}

/**
 * The state but for its two keyed lists (left empty), which grow with the VM: what pre-copy
 * compares whole on every read (smmu-changes.ts), all of it small or bounded by a queue depth.
 */
export function captureSmmuRuntime(p: Omit<SmmuStateParts, "devices">): SmmuState {
  const held = new Map(p.delivery.heldRequests().map((h) => [h.request.cookie, h.eventsBefore]));
  const timeout = p.pageRequests.timeoutMs;
  return {
    features: { ...p.features },
    stage2GranuleBits: p.domain.granuleBits,
    eventQueueDepth: p.events.depth,
    pageRequestCapacity: p.pageRequests.capacity,
    pageRequestTimeoutMs: timeout,
    guestMemoryBytes: p.guestMemoryBytes,
    eventSequence: p.events.sequence,
    nextCookie: p.pageRequests.cookieCounter,
    eventsReported: p.events.reported,
    eventsDropped: p.events.dropped,
    delivered: p.delivery.delivered,
    pasidTable: p.pasidTable?.kind === "invalid" ? undefined : p.pasidTable,
    msi: p.domain.msiBinding && { ...p.domain.msiBinding },
    mappings: [],
    devices: [],
    events: p.events
      .peek()
      .map((q) =>
        q.lost ? { sequence: q.sequence, lost: true } : { sequence: q.sequence, lost: false, event: q.event },
      ),
    pageRequests: p.pageRequests.list().map((r) => ({
      cookie: r.cookie,
      streamId: r.streamId,
      virtualStreamId: r.virtualStreamId,
      substreamId: r.substreamId,
      groupId: r.groupId,
      flags: r.flags,
      perm: r.perm,
      address: r.address,
      remainingMs: Math.min(timeout, Math.max(0, r.deadline - Math.max(r.raisedAt, p.stoppedAt))),
      held: held.has(r.cookie),
      eventsBefore: held.get(r.cookie) ?? 0,
    })),
  };
}

/** The guest STE words as the guest gave them: the stored words with EATS put back (digest §2.1 strips it). */
function guestSteAsGiven(g: GuestSte): [bigint, bigint] {
  const eats = g.stage1.kind === "translate" && g.stage1.ats ? 1n << 28n : 0n;
  return [g.words[0], g.words[1] | eats];
}
