import { formatPq } from "./esb.js";
import type { InterruptController } from "./interrupt-controller.js";
import type { XicsDevice } from "./xics/xics-device.js";
import type { XiveDevice } from "./xive-device.js";
import {
  TM_QW0_USER,
  TM_QW1_OS,
  TM_QW2_HV_POOL,
  TM_QW3_HV_PHYS,
  type ThreadContext,
} from "./thread-context.js";

const hex = (value: number, width: number): string => (value >>> 0).toString(16).padStart(width, "0");

function ringLine(context: ThreadContext, name: string, ring: number): string {
  const r = (i: number) => hex(context.regs[ring + i]!, 2);
  const w2 =
    ((context.regs[ring + 8]! << 24) |
      (context.regs[ring + 9]! << 16) |
      (context.regs[ring + 10]! << 8) |
      context.regs[ring + 11]!) >>>
    0;
  return `CPU[${hex(context.server, 4)}]: ${name.padStart(4)}    ${r(0)}   ${r(1)}  ${r(2)}    ${r(3)}   ${r(4)}  ${r(5)}  ${r(6)}   ${r(7)}  ${hex(w2, 8)}`;
}

/** The six queue words before the producer's index, the last one marked '^' (as `info pic`). */
function queueWindow(device: XiveDevice, end: number): string {
  const ends = device.ends!;
  const state = ends.read(end);
  const entries = 1 << (state.qshift - 2);
  const words: string[] = [];
  let index = (state.qindex - 5) & (entries - 1);
  for (let i = 0; i < 6; i++) {
    let word: string;
    try {
      word = hex(device.memory.readU32BE(state.qaddr + index * 4), 8);
    } catch {
      word = "????????";
    }
    words.push(`${i === 5 ? "^" : ""}${word}`);
    index = (index + 1) & (entries - 1);
  }
  return `[ ${words.join(" ")} ]`;
}

/**
 * A readable state dump in the spirit of QEMU's `info pic` for sPAPR XIVE (xive.md §9): per vCPU
 * the four TIMA rings; per valid source LISN, kind, PQ and asserted, masked, EISN, and for an
 * unmasked source the target/priority of its END in QEMU's EAT (spapr_xive_pic_print_info) with
 * the queue's index/entries, address, generation and the last entries written; where the KVM
 * device routes it elsewhere (RequestedEnds), `routed` and that target/priority after them.
 */
export function dumpXive(device: XiveDevice): string {
  const lines: string[] = [];
  for (const server of device.connectedServers()) {
    const context = device.context(server)!;
    lines.push(`CPU[${hex(server, 4)}]:   QW   NSR CPPR IPB LSMFB ACK# INC AGE PIPR  W2`);
    lines.push(ringLine(context, "USER", TM_QW0_USER));
    lines.push(ringLine(context, "OS", TM_QW1_OS));
    lines.push(ringLine(context, "POOL", TM_QW2_HV_POOL));
    lines.push(ringLine(context, "PHYS", TM_QW3_HV_PHYS));
  }
  lines.push(`XIVE Source ${hex(0, 8)} .. ${hex(device.nrIrqs - 1, 8)}`);
  lines.push("  LISN         PQ    EISN     CPU/PRIO EQ");
  device.sources.forEachValid((irq) => {
    const source = device.source(irq)!;
    let line = `  ${hex(irq, 8)} ${source.lsi ? "LSI" : "MSI"} ${formatPq(source.pq)}${source.asserted ? "A" : " "} ${
      source.masked ? "M" : " "
    } ${hex(source.eisn, 8)} `;
    const ends = device.ends;
    const routed = (source.server << 3) | source.priority;
    const end = source.masked ? routed : device.requestedEnds.endOf(device.sources, irq);
    if (!source.masked && ends !== undefined && end < ends.size && ends.isValid(end)) {
      const state = ends.read(end);
      const entries = state.qshift ? 1 << (state.qshift - 2) : 0;
      line +=
        `${String(state.nvt - 0x400).padStart(3)}/${state.priority} ${String(state.qindex).padStart(6)}/${String(entries).padStart(5)}` +
        ` @${state.qaddr.toString(16)} ^${state.generation}`;
      if (state.enqueue) line += ` ${queueWindow(device, end)}`;
    }
    if (end !== routed) line += ` routed ${source.server}/${source.priority}`;
    lines.push(line.trimEnd());
  });
  return lines.join("\n") + "\n";
}

/** The XICS dump: each ICP's XIRR, pending priority and MFRR; each claimed ICS source. */
export function dumpXics(device: XicsDevice): string {
  const lines: string[] = [];
  for (const server of device.connectedServers()) {
    const icp = device.icp(server)!;
    lines.push(
      `CPU ${server} XIRR=${hex(icp.xirr, 8)} PP=${hex(icp.pendingPriority, 2)} MFRR=${hex(icp.mfrr, 2)}`,
    );
  }
  const ics = device.ics;
  lines.push(`ICS ${hex(ics.offset, 4)}..${hex(ics.offset + ics.count - 1, 4)}`);
  for (let srcno = 0; srcno < ics.count; srcno++) {
    if (ics.flags[srcno] === 0) continue;
    const state = ics.read(srcno + ics.offset);
    lines.push(
      `  ${hex(state.nr, 4)} ${state.lsi ? "LSI" : "MSI"} server ${state.server} prio ${hex(state.priority, 2)} status ${hex(state.status, 2)}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Dump of whichever device a controller presents. */
export function dumpController(controller: InterruptController): string {
  const active = controller.active;
  const header = `mode ${controller.mode}, active ${active.mode}\n`;
  return header + (active.mode === "XIVE" ? dumpXive(active.xive) : dumpXics(active.xics));
}
