import { mergeKeyed, stateError, type KeyedChanges } from "@vplane/model-kit";
import {
  CONTROLLER_STATE_FORMAT,
  scalarsOf,
  type ControllerHeader,
  type ControllerState,
  type IcpRecord,
  type IcsSourceRecord,
  type XiveContextState,
  type XiveQueueState,
  type XiveSourceState,
} from "./controller-state.js";

/**
 * What changed in a controller's state between two pre-copy reads (issue 14, like VFIO's
 * PRE_COPY data): the header, the vCPU and machine-source lists when they changed (whole: they
 * are short and shape everything else), the stopped triggers (whole, bounded), and of each keyed
 * list the records that changed or appeared and the keys that went away. A delta from nothing
 * holds everything. Applied in order to the state the previous ones built, it gives the state
 * the source had at the read (mergeControllerDelta).
 *
 * Binary layout, format version 1 (big-endian, the full state's records, controller-state.ts):
 *
 * ```
 * header (48 bytes, the full state's, magic 0x56504944 "VPID")
 * u8 lists: bit0 vcpus follow, bit1 machine_sources follow (other bits 0)   u8[3] zero
 * [vcpus]  [machine_sources]                                 as in the full state, when flagged
 * stopped_triggers                                           as in the full state
 * XIVE: sources changed (records), removed (u32 n, n × u32 irq)
 *       queues changed, removed (end indexes); contexts changed, removed (servers)
 *       [requested_ends]   as in the full state, of the changed sources, when one has it
 * XICS: ics sources changed, removed (nr); icps changed, removed (servers)
 * ```
 * Every changed list and removed list is strictly ascending by key.
 */
export const CONTROLLER_DELTA_MAGIC = 0x5650_4944;

/** The delta's list flags byte. */
export const DELTA_LISTS = { VCPUS: 1, MACHINE_SOURCES: 2 } as const;

export type { KeyedChanges };

export interface ControllerDelta {
  header: ControllerHeader;
  /** Set when the vCPUs changed: all of them. */
  vcpus: ControllerState["vcpus"] | undefined;
  /** Set when the machine's sources changed: all of them. */
  machineSources: ControllerState["machineSources"] | undefined;
  stoppedTriggers: number[];
  /** Set when XIVE is active. */
  xive:
    | {
        sources: KeyedChanges<XiveSourceState>;
        queues: KeyedChanges<XiveQueueState>;
        contexts: KeyedChanges<XiveContextState>;
      }
    | undefined;
  /** Set when XICS is active. */
  xics: { sources: KeyedChanges<IcsSourceRecord>; icps: KeyedChanges<IcpRecord> } | undefined;
}

/** Each list's key. */
const keyOf = {
  irq: (s: { irq: number }) => s.irq,
  end: (q: XiveQueueState) => q.endIndex,
  server: (c: { server: number }) => c.server,
  nr: (s: IcsSourceRecord) => s.nr,
};

/**
 * The state `delta` makes of `base` (undefined: nothing before, so the delta must hold the vCPU
 * and machine-source lists). A delta whose removals do not fit its base is INVALID_ARGUMENT
 * STATE_DELTA_MISMATCH; the result still needs decodeControllerState's checks.
 */
export function mergeControllerDelta(
  base: ControllerState | undefined,
  delta: ControllerDelta,
): ControllerState {
  const { header } = delta;
  const same = base?.activeMode === header.activeMode ? base : undefined;
  const vcpus = delta.vcpus ?? base?.vcpus;
  const machineSources = delta.machineSources ?? base?.machineSources;
  if (vcpus === undefined || machineSources === undefined)
    throw stateError(
      CONTROLLER_STATE_FORMAT,
      "STATE_DELTA_MISMATCH",
      "lists",
      "the first delta must hold the vCPUs and the machine's sources",
    );
  return {
    ...scalarsOf(header),
    vcpus,
    machineSources,
    stoppedTriggers: delta.stoppedTriggers,
    xive: delta.xive && {
      xiveSelected: header.xiveSelected,
      sources: mergeKeyed(
        same?.xive?.sources ?? [],
        delta.xive.sources,
        keyOf.irq,
        "xive.sources",
        CONTROLLER_STATE_FORMAT,
      ),
      queues: mergeKeyed(
        same?.xive?.queues ?? [],
        delta.xive.queues,
        keyOf.end,
        "xive.queues",
        CONTROLLER_STATE_FORMAT,
      ),
      contexts: mergeKeyed(
        same?.xive?.contexts ?? [],
        delta.xive.contexts,
        keyOf.server,
        "xive.contexts",
        CONTROLLER_STATE_FORMAT,
      ),
    },
    xics: delta.xics && {
      sources: mergeKeyed(
        same?.xics?.sources ?? [],
        delta.xics.sources,
        keyOf.nr,
        "xics.sources",
        CONTROLLER_STATE_FORMAT,
      ),
      icps: mergeKeyed(
        same?.xics?.icps ?? [],
        delta.xics.icps,
        keyOf.server,
        "xics.icps",
        CONTROLLER_STATE_FORMAT,
      ),
    },
  };
}
