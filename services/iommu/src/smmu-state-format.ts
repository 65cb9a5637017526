import { decodeState, refuseState, refusedAsPayload } from "@vplane/service-kit";
import {
  DEFAULT_LIMITS,
  SMMU_STATE_FORMAT_VERSION,
  decodeSmmuDelta,
  decodeSmmuState,
  encodeSmmuState,
  mergeSmmuDelta,
  type SmmuDelta,
  type SmmuState,
} from "@vplane/smmuv3";
import { LIMITS } from "./service-limits.js";
import type { SmmuSpec } from "./smmu-config-store.js";

/** Section kind of an SMMUv3 (proto/vplane/devicestate/v1). */
export const SMMU_STATE_KIND = "smmuv3";

/** One exported SMMU state: a DeviceSection's kind, format version and payload. */
export interface ExportedSmmuState {
  kind: typeof SMMU_STATE_KIND;
  formatVersion: number;
  payload: Uint8Array;
}

/** An SMMU state as the shared format exports it. */
export function exportedSmmuState(payload: Uint8Array): ExportedSmmuState {
  return { kind: SMMU_STATE_KIND, formatVersion: SMMU_STATE_FORMAT_VERSION, payload };
}

/**
 * An SMMU state read from its bytes: what every backend imports. The format is libs/smmuv3's
 * whichever backend exported it (the emulated model's, or what a native backend reads from
 * iommufd), so a VM moves between them.
 */
export interface ImportedSmmuState {
  /** Decoded and checked in full. */
  readonly state: SmmuState;
  /** What the SMMU was created with on its source (its durable record holds the same). */
  readonly spec: SmmuSpec;
  readonly guestMemoryBytes: number;
}

/**
 * Reads one SMMU state: a known format version (with its section's envelope; a state accepted
 * before comes without one), a payload libs/smmuv3 decodes in full, and guest-visible limits this
 * service can keep (the durable record holds queue depth and timeout; the page-request capacity
 * is the model's default). Refusals are StateRefused, named relative to the section.
 */
export function readSmmuState(payload: Uint8Array, envelope?: { formatVersion: number }): ImportedSmmuState {
  const state = decodeState(
    { payload, ...(envelope ? { formatVersion: envelope.formatVersion } : {}) },
    SMMU_STATE_FORMAT_VERSION,
    decodeSmmuState,
  );
  const unsupported = (field: string, message: string) =>
    refuseState("STATE_LIMITS_UNSUPPORTED", message, `payload.${field}`);
  if (state.eventQueueDepth > LIMITS.maxEventQueueDepth)
    throw unsupported("event_queue_depth", `event queue depth above ${LIMITS.maxEventQueueDepth}`);
  if (state.pageRequestTimeoutMs > LIMITS.maxPageRequestTimeoutMs)
    throw unsupported(
      "page_request_timeout_ms",
      `page-request timeout above ${LIMITS.maxPageRequestTimeoutMs} ms`,
    );
  if (state.pageRequestCapacity !== DEFAULT_LIMITS.pageRequests)
    throw unsupported(
      "page_request_capacity",
      `this service keeps ${DEFAULT_LIMITS.pageRequests} page requests`,
    );
  const { features, stage2GranuleBits, eventQueueDepth, pageRequestTimeoutMs, guestMemoryBytes } = state;
  return {
    state,
    spec: { features, stage2GranuleBits, eventQueueDepth, pageRequestTimeoutMs },
    guestMemoryBytes,
  };
}

/** Reads a pre-copy delta (libs/smmuv3 smmu-delta.ts); refusals as readSmmuState's. */
export function readSmmuDelta(payload: Uint8Array, envelope?: { formatVersion: number }): SmmuDelta {
  return decodeState(
    { payload, ...(envelope ? { formatVersion: envelope.formatVersion } : {}) },
    SMMU_STATE_FORMAT_VERSION,
    decodeSmmuDelta,
  );
}

/**
 * The state a prepared import holds once `delta` applies to `base` (undefined: the SMMU's first
 * delta), checked in full as any exported state: a delta that does not fit its base, or makes an
 * inconsistent state, is refused on "payload".
 */
export function applySmmuDelta(base: SmmuState | undefined, delta: SmmuDelta): ImportedSmmuState {
  const merged = refusedAsPayload(() => mergeSmmuDelta(base, delta));
  return readSmmuState(encodeSmmuState(merged));
}
