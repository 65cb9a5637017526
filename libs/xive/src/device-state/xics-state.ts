import type { Icp } from "../xics/icp.js";
import type { Ics } from "../xics/ics.js";
import type { IcsSourceRecord, XicsState } from "./controller-state.js";

/**
 * A quiesced XICS controller's state (QEMU's ICS and ICP vmstate): each ICS source that is not
 * in its reset state (claimed, or given a server or priority), and each connected vCPU's ICP
 * (`icps`, ascending by server).
 */
export function captureXicsState(ics: Ics, icps: readonly Icp[]): XicsState {
  const sources: IcsSourceRecord[] = [];
  for (let srcno = 0; srcno < ics.count; srcno++) {
    const record: IcsSourceRecord = {
      nr: ics.offset + srcno,
      flags: ics.flags[srcno]!,
      server: ics.server[srcno]!,
      priority: ics.priority[srcno]!,
      savedPriority: ics.savedPriority[srcno]!,
      status: ics.status[srcno]!,
    };
    const reset =
      record.flags === 0 &&
      record.server === 0 &&
      record.priority === 0xff &&
      record.savedPriority === 0xff &&
      record.status === 0;
    if (!reset) sources.push(record);
  }
  return {
    sources,
    icps: icps.map((icp) => ({
      server: icp.server,
      xirr: icp.xirr,
      pendingPriority: icp.pendingPriority,
      mfrr: icp.mfrr,
    })),
  };
}

/**
 * Applies a decoded state to a fresh XICS controller's ICS and connected ICPs (its vCPUs
 * connected and sources claimed): sources first, then the ICPs (their lines follow XISR).
 */
export function applyXicsState(ics: Ics, icps: readonly Icp[], state: XicsState): void {
  for (const s of state.sources) {
    const srcno = s.nr - ics.offset;
    ics.flags[srcno] = s.flags;
    ics.server[srcno] = s.server;
    ics.priority[srcno] = s.priority;
    ics.savedPriority[srcno] = s.savedPriority;
    ics.status[srcno] = s.status;
  }
  const byServer = new Map(icps.map((icp) => [icp.server, icp]));
  for (const icp of state.icps) byServer.get(icp.server)!.restore(icp.xirr, icp.pendingPriority, icp.mfrr);
}
