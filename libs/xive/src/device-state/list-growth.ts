import { stateError } from "@vplane/model-kit";
import type { ControllerDelta } from "./controller-delta.js";
import { CONTROLLER_STATE_FORMAT, type ControllerState } from "./controller-state.js";

type Vcpu = ControllerState["vcpus"][number];
type MachineSource = ControllerState["machineSources"][number];

/**
 * What a stop delta's vCPU and machine-source lists add to a controller's (issue 14: a vCPU
 * connected, or a source initialised, after the last pre-copy iteration): the vCPUs to connect
 * and the sources to initialise or whose LSI setting changes. Both ascending, as the lists.
 */
export interface ListGrowth {
  vcpus: Vcpu[];
  sources: MachineSource[];
  /** The vCPU list after the delta; undefined when the delta leaves it. */
  vcpusAfter: readonly Vcpu[] | undefined;
}

/** A controller's lists, looked up by key (the delta's are walked, not the controller's sorted). */
export interface ControllerLists {
  vcpuCount: number;
  serverOf(vcpuId: number): number | undefined;
  sourceCount: number;
  lsiOf(irq: number): boolean | undefined;
}

/**
 * The growth of a stop delta's lists (decoded: each list ascending, servers distinct and below
 * NR_SERVERS, sources below the limit, readVcpus / readMachineSources) over the controller's.
 * Undefined when the delta drops or moves a vCPU the controller has, or drops a source: no KVM
 * call disconnects a vCPU from its interrupt controller or un-initialises a source, so the
 * source never sends that, and a controller cannot be taken there in place; the caller builds
 * anew from the merged state, whose full checks decide. One pass over the delta's lists, each
 * key looked up (a list holds each key once, so the controller's are all there when as many
 * keys match as it has).
 */
export function listGrowth(
  lists: ControllerLists,
  delta: Pick<ControllerDelta, "vcpus" | "machineSources">,
): ListGrowth | undefined {
  const growth: ListGrowth = { vcpus: [], sources: [], vcpusAfter: delta.vcpus };
  if (delta.vcpus !== undefined) {
    let kept = 0;
    for (const v of delta.vcpus) {
      const server = lists.serverOf(v.vcpuId);
      if (server === undefined) growth.vcpus.push(v);
      else if (server === v.server) kept++;
    }
    if (kept !== lists.vcpuCount) return undefined;
  }
  if (delta.machineSources !== undefined) {
    let kept = 0;
    for (const s of delta.machineSources) {
      const lsi = lists.lsiOf(s.irq);
      if (lsi !== undefined) kept++;
      if (lsi !== s.lsi) growth.sources.push(s);
    }
    if (kept !== lists.sourceCount) return undefined;
  }
  return growth;
}

/**
 * A key the stop delta removes from a list whose keys are the machine's (a source or vCPU the
 * machine keeps): STATE_DELTA_MISMATCH when the state does not hold it (mergeKeyed), else
 * STATE_INCONSISTENT as decodeControllerState finds the merged list one short of the machine's.
 */
export function removedMachineKey(list: string, key: number, held: boolean, what: string): Error {
  return held
    ? stateError(
        CONTROLLER_STATE_FORMAT,
        "STATE_INCONSISTENT",
        list,
        `${what} ${key} is removed, but the machine keeps it`,
      )
    : stateError(
        CONTROLLER_STATE_FORMAT,
        "STATE_DELTA_MISMATCH",
        `${list}.removed`,
        `${key} is not in the state the delta applies to`,
      );
}
