import { decodeState, refuseState, refusedAsPayload } from "@vplane/service-kit";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  decodeControllerDelta,
  decodeControllerState,
  encodeControllerState,
  firstDeltaAsState,
  mergeControllerDelta,
  type ActiveMode,
  type CheckedControllerState,
  type ControllerDelta,
  type ControllerState,
} from "@vplane/xive";
import type { ControllerSpec } from "./controller-config-store.js";
import { LIMITS } from "./service-limits.js";

/** One exported device state: a DeviceSection's kind, format version and payload. */
export interface ExportedState {
  kind: "xive" | "xics";
  formatVersion: number;
  payload: Uint8Array;
}

/** The section kind of each active mode. */
export const STATE_KIND_OF_MODE = { XIVE: "xive", XICS: "xics" } as const satisfies Record<
  ActiveMode,
  ExportedState["kind"]
>;

/**
 * A controller state read from its bytes: what every backend imports. The format is libs/xive's
 * (xive.md §6) whichever backend exported it: the emulated one encodes its model, a native one
 * what it reads from the kernel, so a VM moves between them.
 */
export interface ImportedControllerState {
  /** The payload as it came (an imported controller keeps it as its base configuration). */
  readonly payload: Uint8Array;
  /** Decoded and checked in full. */
  readonly state: CheckedControllerState;
  /** What the controller was created with on its source (its durable record holds the same). */
  readonly spec: ControllerSpec;
  /** The guest's CAS choice, replayed first on a restart (SelectMode). */
  readonly selectedMode: ActiveMode | undefined;
  readonly guestMemoryBytes: number;
}

/** A section's kind and format version, which its payload must match. */
type SectionEnvelope = Pick<ExportedState, "formatVersion"> & { kind: string };

function checkKind(activeMode: ActiveMode, envelope: SectionEnvelope | undefined): void {
  if (envelope && STATE_KIND_OF_MODE[activeMode] !== envelope.kind) {
    throw refuseState(
      "SECTION_KIND_MISMATCH",
      `a "${envelope.kind}" section holds ${activeMode} state`,
      "kind",
    );
  }
}

/** `decode` of a payload of this service's format version (the envelope's, when it came with one). */
function decodeSection<T>(
  payload: Uint8Array,
  envelope: SectionEnvelope | undefined,
  decode: (payload: Uint8Array) => T,
): T {
  const formatVersion = envelope ? { formatVersion: envelope.formatVersion } : {};
  return decodeState({ payload, ...formatVersion }, CONTROLLER_STATE_FORMAT_VERSION, decode);
}

/**
 * Reads a controller state. With its section's envelope, the format version and the kind must
 * match the payload; a state accepted before (a restart) comes without one. Refusals are
 * StateRefused, named relative to the section.
 */
export function readControllerState(
  payload: Uint8Array,
  envelope?: SectionEnvelope,
): ImportedControllerState {
  const state = decodeSection(payload, envelope, decodeControllerState);
  checkKind(state.activeMode, envelope);
  return {
    payload,
    state,
    spec: { mode: state.mode, nrServers: state.nrServersSetting ?? LIMITS.maxServers, nrIrqs: state.nrIrqs },
    selectedMode: state.xive?.xiveSelected ? "XIVE" : undefined,
    guestMemoryBytes: state.guestMemoryBytes,
  };
}

/** Reads a pre-copy delta (libs/xive controller-delta.ts); refusals as readControllerState's. */
export function readControllerDelta(payload: Uint8Array, envelope?: SectionEnvelope): ControllerDelta {
  const delta = decodeSection(payload, envelope, decodeControllerDelta);
  checkKind(delta.header.activeMode, envelope);
  return delta;
}

/**
 * The state a first pre-copy delta makes (it holds everything), checked in full as any exported
 * state, read from the delta's bytes (firstDeltaAsState: no record decoded, merged and encoded
 * on the way); refusals as readControllerDelta's, then applyControllerDelta's.
 */
export function readFirstControllerDelta(
  payload: Uint8Array,
  envelope?: SectionEnvelope,
): ImportedControllerState {
  return readControllerState(decodeSection(payload, envelope, firstDeltaAsState), envelope);
}

/** A pre-copy section as it came: read as a delta, or (the first) straight as the state it makes. */
export interface PreCopySection {
  readonly payload: Uint8Array;
  delta(): ControllerDelta;
  first(): ImportedControllerState;
}

/**
 * The state a prepared import holds once `delta` applies to `base` (undefined: the first delta),
 * checked in full as any exported state (its payload is the merged state, encoded): a delta
 * that does not fit its base, or makes an inconsistent state, is refused on "payload".
 */
export function applyControllerDelta(
  base: ControllerState | undefined,
  delta: ControllerDelta,
): ImportedControllerState {
  const merged = refusedAsPayload(() => mergeControllerDelta(base, delta));
  return readControllerState(encodeControllerState(merged));
}

/** An imported state kept as its first full state and the deltas after it (a restart reads it back). */
export function mergedImportedState(
  base: Uint8Array,
  deltas: readonly Uint8Array[],
): ImportedControllerState {
  let state = readControllerState(base);
  for (const delta of deltas) state = applyControllerDelta(state.state, readControllerDelta(delta));
  return state;
}
