import type { KeyedChanges } from "@vplane/model-kit";
import type { Icp } from "../xics/icp.js";
import type { Ics } from "../xics/ics.js";
import type { IcpRecord, IcsSourceRecord, XicsState } from "./controller-state.js";

/** The ICS arrays a source's saved record is read from (an Ics, or a copy of its arrays). */
export type IcsArrays = Pick<Ics, "flags" | "server" | "priority" | "savedPriority" | "status">;

/** An unclaimed ICS source as created (QEMU xics.c ics_reset: server and status 0, priority and saved priority 0xFF). */
const RESET_SOURCE = { flags: 0, server: 0, priority: 0xff, savedPriority: 0xff, status: 0 } as const;

/** Source `srcno`'s saved record (number `offset + srcno`); undefined in its reset state (not saved). */
export function icsSourceRecord(ics: IcsArrays, offset: number, srcno: number): IcsSourceRecord | undefined {
  const record: IcsSourceRecord = {
    nr: offset + srcno,
    flags: ics.flags[srcno]!,
    server: ics.server[srcno]!,
    priority: ics.priority[srcno]!,
    savedPriority: ics.savedPriority[srcno]!,
    status: ics.status[srcno]!,
  };
  const reset =
    record.flags === RESET_SOURCE.flags &&
    record.server === RESET_SOURCE.server &&
    record.priority === RESET_SOURCE.priority &&
    record.savedPriority === RESET_SOURCE.savedPriority &&
    record.status === RESET_SOURCE.status;
  return reset ? undefined : record;
}

/** An ICP's saved record. */
export function icpRecord(icp: Icp): IcpRecord {
  return { server: icp.server, xirr: icp.xirr, pendingPriority: icp.pendingPriority, mfrr: icp.mfrr };
}

/**
 * A quiesced XICS controller's state (QEMU's ICS and ICP vmstate): each ICS source that is not
 * in its reset state (claimed, or given a server or priority), and each connected vCPU's ICP
 * (`icps`, ascending by server).
 */
export function captureXicsState(ics: Ics, icps: readonly Icp[]): XicsState {
  const sources: IcsSourceRecord[] = [];
  for (let srcno = 0; srcno < ics.count; srcno++) {
    const record = icsSourceRecord(ics, ics.offset, srcno);
    if (record) sources.push(record);
  }
  return { sources, icps: icps.map(icpRecord) };
}

/**
 * Applies a decoded state to a fresh XICS controller's ICS and connected ICPs (its vCPUs
 * connected and sources claimed): sources first, then the ICPs (their lines follow XISR).
 */
export function applyXicsState(ics: Ics, icps: readonly Icp[], state: XicsState): void {
  const byServer = new Map(icps.map((icp) => [icp.server, icp]));
  applyXicsChanges(
    ics,
    (server) => byServer.get(server)!,
    { changed: state.sources, removed: [] },
    state.icps,
  );
}

/**
 * Applies checked records to a quiesced XICS controller in the same order, each replacing what
 * it had for its key: the changed ICS sources, the removed ones back to their reset state (not
 * saved, icsSourceRecord), then the changed ICPs.
 */
export function applyXicsChanges(
  ics: Ics,
  icpOf: (server: number) => Icp,
  sources: KeyedChanges<IcsSourceRecord>,
  icps: readonly IcpRecord[],
): void {
  for (const nr of sources.removed) writeSource(ics, { nr, ...RESET_SOURCE });
  for (const s of sources.changed) writeSource(ics, s);
  for (const icp of icps) icpOf(icp.server).restore(icp.xirr, icp.pendingPriority, icp.mfrr);
}

function writeSource(ics: Ics, s: IcsSourceRecord): void {
  const srcno = s.nr - ics.offset;
  ics.flags[srcno] = s.flags;
  ics.server[srcno] = s.server;
  ics.priority[srcno] = s.priority;
  ics.savedPriority[srcno] = s.savedPriority;
  ics.status[srcno] = s.status;
}
