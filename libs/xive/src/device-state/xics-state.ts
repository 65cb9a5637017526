import type { XicsDevice } from "../xics/xics-device.js";
import type { IcsSourceRecord, XicsState } from "./controller-state.js";
import { StoppedTriggers } from "./stopped-triggers.js";

/**
 * A quiesced XICS controller's state (QEMU's ICS and ICP vmstate): each ICS source that is not
 * in its reset state (claimed, or given a server or priority), and each vCPU's ICP.
 */
export function captureXicsState(device: XicsDevice): XicsState {
  const ics = device.ics;
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
  const icps = device.connectedServers().map((server) => {
    const icp = device.icp(server)!;
    return { server, xirr: icp.xirr, pendingPriority: icp.pendingPriority, mfrr: icp.mfrr };
  });
  return { sources, icps };
}

/**
 * Applies a decoded state to a fresh XICS controller whose vCPUs are connected and sources
 * claimed: sources first, then the ICPs (their lines follow XISR). Left quiesced with
 * `stoppedTriggers`.
 */
export function applyXicsState(
  device: XicsDevice,
  state: XicsState,
  stoppedTriggers: readonly number[],
): void {
  const ics = device.ics;
  for (const s of state.sources) {
    const srcno = s.nr - ics.offset;
    ics.flags[srcno] = s.flags;
    ics.server[srcno] = s.server;
    ics.priority[srcno] = s.priority;
    ics.savedPriority[srcno] = s.savedPriority;
    ics.status[srcno] = s.status;
  }
  device.stopped = StoppedTriggers.from(stoppedTriggers);
  for (const icp of state.icps) device.icp(icp.server)!.restore(icp.xirr, icp.pendingPriority, icp.mfrr);
}
