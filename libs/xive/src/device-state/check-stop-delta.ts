import { stateError } from "@vplane/model-kit";
import { STATUS_LSI } from "../source-table.js";
import { XICS_IPI, XISR_MASK } from "../xics/icp.js";
import { XICS_FLAGS_LSI, XICS_FLAGS_MSI } from "../xics/ics.js";
import type { XicsDevice } from "../xics/xics-device.js";
import type { XiveDevice } from "../xive-device.js";
import type { ControllerDelta } from "./controller-delta.js";
import { CONTROLLER_STATE_FORMAT } from "./controller-state.js";
import {
  checkLatchedPq,
  checkRequestedEnd,
  checkStoppedTriggers,
  checkXiveContext,
  checkXiveQueue,
  checkXiveSource,
} from "./decode-controller-state.js";
import { removedMachineKey, type ListGrowth } from "./list-growth.js";
import { icsSourceRecord } from "./xics-state.js";

const inconsistent = (field: string, message: string) =>
  stateError(CONTROLLER_STATE_FORMAT, "STATE_INCONSISTENT", field, message);
const mismatch = (field: string, message: string) =>
  stateError(CONTROLLER_STATE_FORMAT, "STATE_DELTA_MISMATCH", field, message);
const malformed = (field: string, message: string) =>
  stateError(CONTROLLER_STATE_FORMAT, "STATE_MALFORMED", field, message);

/** The state holds one `what` per vCPU (decodeControllerState): a new vCPU's is among `records`. */
function requireEachNewVcpu(
  growth: ListGrowth,
  records: readonly { server: number }[],
  list: string,
  what: string,
): void {
  const held = new Set(records.map((r) => r.server));
  for (const { server } of growth.vcpus)
    if (!held.has(server))
      throw inconsistent(list, `the vCPU of server ${server} is connected, the state has no ${what} of it`);
}

/**
 * Checks a stop delta's XIVE records against the quiesced device it is to change in place
 * (issue 14: the finish costs what changed), with decodeControllerState's rules: each changed
 * source is one of the machine's with its LSI setting (and QEMU's END, where it is not its
 * routing, of its priority and a connected vCPU), each queue and context fits the connected
 * vCPUs, header and guest RAM, the stopped triggers name sources within their bounds, and every
 * source they name (changed or not) shows the latched PQ they leave. With the lists' `growth`
 * (a vCPU connected, a source initialised or its LSI setting changed after the last iteration):
 * the state the full import checks holds a record of each such source and a context of each new
 * vCPU, and every record fits the grown lists. A removed source or context is the machine's
 * (removedMachineKey). Throws STATE_* naming the record; the device is not touched.
 */
export function checkXiveStopDelta(
  xive: XiveDevice,
  guestMemoryBytes: number,
  { xive: changes, stoppedTriggers }: ControllerDelta,
  growth: ListGrowth,
): void {
  const { sources, queues, contexts } = changes!;
  const grown = new Map(growth.sources.map((s) => [s.irq, s.lsi]));
  const lsiOf = (irq: number) =>
    grown.get(irq) ?? (xive.sources.isValid(irq) ? (xive.sources.status(irq) & STATUS_LSI) !== 0 : undefined);
  sources.removed.forEach((irq) => {
    throw removedMachineKey("xive.sources", irq, xive.sources.isValid(irq), "XIVE source");
  });
  contexts.removed.forEach((server) => {
    throw removedMachineKey(
      "xive.contexts",
      server,
      xive.context(server) !== undefined,
      "the context of server",
    );
  });
  const connected = new Set([...xive.connectedServers(), ...growth.vcpus.map((v) => v.server)]);
  sources.changed.forEach((s, i) => {
    const field = (name: string) => `xive.sources.changed[${i}].${name}`;
    const lsi = lsiOf(s.irq);
    if (lsi === undefined)
      throw inconsistent(field("irq"), `XIVE source ${s.irq} is not one the machine initialised`);
    checkXiveSource(s, lsi, field);
    checkRequestedEnd(s, connected, field("requested_end"));
  });
  const recorded = new Set(sources.changed.map((s) => s.irq));
  for (const { irq, lsi } of growth.sources)
    if (!recorded.has(irq))
      throw inconsistent(
        "xive.sources",
        `the machine initialised source ${irq} (LSI ${lsi}) after the last iteration, the delta has no record of it`,
      );
  requireEachNewVcpu(growth, contexts.changed, "xive.contexts", "context");
  const header = { nrServers: xive.nrServers, guestMemoryBytes };
  queues.changed.forEach((q, i) =>
    checkXiveQueue(q, header, connected, (name) => `xive.queues.changed[${i}].${name}`),
  );
  const size = connected.size === 0 ? 0 : xive.nrServers << 3;
  queues.removed.forEach((index, i) => {
    if (index >= size)
      throw inconsistent(`xive.queues.removed[${i}]`, `END ${index} is not below the END table size ${size}`);
  });
  contexts.changed.forEach((c, i) => {
    const field = (name: string) => `xive.contexts.changed[${i}].${name}`;
    if (!connected.has(c.server)) throw inconsistent(field("server"), `no vCPU has server ${c.server}`);
    checkXiveContext(c, field);
  });
  const counts = checkStoppedTriggers(stoppedTriggers, lsiOf);
  const changed = new Map(sources.changed.map((s, i) => [s.irq, i]));
  sources.changed.forEach((s, i) =>
    checkLatchedPq(s, counts.get(s.irq) ?? 0, `xive.sources.changed[${i}].status`),
  );
  const before = xive.sourceEngine.stopped?.triggers.order ?? [];
  for (const irq of new Set([...counts.keys(), ...before])) {
    if (changed.has(irq)) continue;
    checkLatchedPq(xive.savedSource(irq), counts.get(irq) ?? 0, "stopped_triggers");
  }
}

/**
 * Checks a stop delta's XICS records against the quiesced controller it is to change in place,
 * with decodeControllerState's rules for the state they make (readXics): each changed ICS
 * source is one of the ICS's with known flag and status bits, and the claimed sources are the
 * machine's after the lists' `growth` (a source the delta initialises in the ICS has a claimed
 * record); a removed one was in the state (STATE_DELTA_MISMATCH, as mergeKeyed) and unclaimed;
 * each changed ICP is a connected vCPU's (a new vCPU's among them: the state holds one ICP per
 * vCPU, so none is removed), its XISR either 0 with pending priority 0xFF or the IPI or a
 * claimed source; the stopped triggers name claimed sources within their bounds. Throws naming
 * the record; the controller is not touched.
 */
export function checkXicsStopDelta(
  xics: XicsDevice,
  { xics: changes, stoppedTriggers }: ControllerDelta,
  growth: ListGrowth,
): void {
  const { sources, icps } = changes!;
  const { ics } = xics;
  const claiming = new Set(growth.sources.filter((s) => ics.owns(s.irq)).map((s) => s.irq));
  const claimed = (nr: number) => claiming.has(nr) || ics.isClaimed(nr);
  const servers = new Set([...xics.connectedServers(), ...growth.vcpus.map((v) => v.server)]);
  icps.removed.forEach((server) => {
    throw removedMachineKey("xics.icps", server, xics.icp(server) !== undefined, "the ICP of server");
  });
  const claims = new Map<number, number>();
  const removed = new Set(sources.removed);
  sources.changed.forEach((s, i) => {
    if (removed.has(s.nr))
      throw mismatch(`xics.sources.changed[${i}].nr`, `${s.nr} is both changed and removed`);
  });
  sources.removed.forEach((nr, i) => {
    const field = `xics.sources.removed[${i}]`;
    if (!ics.owns(nr) || icsSourceRecord(ics, ics.offset, nr - ics.offset) === undefined)
      throw mismatch(field, `${nr} is not in the state the delta applies to`);
    if (claimed(nr)) throw inconsistent(field, `source ${nr} is claimed: the machine initialised it`);
  });
  sources.changed.forEach((s, i) => {
    const field = (name: string) => `xics.sources.changed[${i}].${name}`;
    if (!ics.owns(s.nr))
      throw inconsistent(
        field("nr"),
        `source ${s.nr} is outside the ICS ${ics.offset}..${ics.offset + ics.count - 1}`,
      );
    if (s.flags > XICS_FLAGS_MSI)
      throw malformed(field("flags"), `source ${s.nr}: flags ${s.flags} is not 0, 1 (LSI) or 2 (MSI)`);
    if (s.status > 0xf) throw malformed(field("status"), `source ${s.nr}: unknown status bits`);
    if ((s.flags !== 0) !== claimed(s.nr))
      throw inconsistent(
        field("flags"),
        `source ${s.nr}: the claimed ICS sources are not the sources the machine initialised`,
      );
    claims.set(s.nr, s.flags);
  });
  for (const nr of claiming)
    if (!claims.has(nr) && !ics.isClaimed(nr))
      throw inconsistent("xics.sources", `the machine initialised source ${nr}, the ICS has not claimed it`);
  icps.changed.forEach((c, i) => {
    const field = (name: string) => `xics.icps.changed[${i}].${name}`;
    if (!servers.has(c.server)) throw inconsistent(field("server"), `no vCPU has server ${c.server}`);
    const xisr = c.xirr & XISR_MASK;
    if ((xisr === 0) !== (c.pendingPriority === 0xff))
      throw inconsistent(
        field("pending_priority"),
        `server ${c.server}: XISR ${xisr} with pending priority ${c.pendingPriority}`,
      );
    if (xisr !== 0 && xisr !== XICS_IPI && !claimed(xisr))
      throw inconsistent(
        field("xirr"),
        `server ${c.server}: XISR ${xisr} is neither the IPI nor a claimed source`,
      );
  });
  requireEachNewVcpu(growth, icps.changed, "xics.icps", "ICP");
  checkStoppedTriggers(stoppedTriggers, (irq) => {
    const flags = claims.get(irq) ?? (ics.isClaimed(irq) ? ics.flags[irq - ics.offset]! : 0);
    return flags === 0 ? undefined : flags === XICS_FLAGS_LSI;
  });
}
