import { stateError } from "@vplane/model-kit";
import { STATUS_LSI } from "../source-table.js";
import type { XiveDevice } from "../xive-device.js";
import type { ControllerDelta } from "./controller-delta.js";
import { CONTROLLER_STATE_FORMAT } from "./controller-state.js";
import {
  checkLatchedPq,
  checkStoppedTriggers,
  checkXiveContext,
  checkXiveQueue,
  checkXiveSource,
} from "./decode-controller-state.js";

const inconsistent = (field: string, message: string) =>
  stateError(CONTROLLER_STATE_FORMAT, "STATE_INCONSISTENT", field, message);

/**
 * Checks a stop delta's XIVE records against the quiesced device it is to change in place
 * (issue 14: the finish costs what changed), with decodeControllerState's rules: each changed
 * source is one of the machine's with its LSI setting, each queue and context fits the connected
 * vCPUs, header and guest RAM, the stopped triggers name sources within their bounds, and every
 * source they name (changed or not) shows the latched PQ they leave. Throws STATE_INCONSISTENT
 * naming the record; the device is not touched.
 */
export function checkXiveStopDelta(
  xive: XiveDevice,
  guestMemoryBytes: number,
  { xive: changes, stoppedTriggers }: ControllerDelta,
): void {
  const { sources, queues, contexts } = changes!;
  const lsiOf = (irq: number) =>
    xive.sources.isValid(irq) ? (xive.sources.status(irq) & STATUS_LSI) !== 0 : undefined;
  sources.changed.forEach((s, i) => {
    const field = (name: string) => `xive.sources.changed[${i}].${name}`;
    const lsi = lsiOf(s.irq);
    if (lsi === undefined)
      throw inconsistent(field("irq"), `XIVE source ${s.irq} is not one the machine initialised`);
    checkXiveSource(s, lsi, field);
  });
  const connected = new Set(xive.connectedServers());
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
