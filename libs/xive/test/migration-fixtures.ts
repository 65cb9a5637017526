import { SparseGuestMemory } from "@vplane/guest-memory";
import { HcallOpcode } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { RtasReturn } from "../src/xics/xics-device.js";
import { eq, sourceConfig } from "./fixtures.js";

/** Guest RAM of the migration tests: small enough to copy whole, as a VMM moves RAM. */
export const MIGRATION_RAM = 1 << 20;

/** MSIs and LSIs of the test machines, and where each is routed (server, priority). */
export const MSIS = [0x1300, 0x1301, 0x1302, 0x1303, 0x1304, 0x1305];
export const LSIS = [0x1200, 0x1201];
export const SOURCES = [...LSIS, ...MSIS];
export const ROUTES = new Map<number, [number, number]>([
  [0x1200, [0, 6]],
  [0x1201, [1, 6]],
  [0x1300, [0, 6]],
  [0x1301, [2, 5]],
  [0x1302, [1, 6]],
  [0x1303, [1, 6]],
  [0x1304, [2, 5]],
]);
/** 0x1305 stays masked: its triggers leave P set and reach no queue (xive.md §4.2 step 2). */
export const MASKED_SOURCE = 0x1305;
/** One queue priority per vCPU: POWER9's KVM device has one escalation interrupt per vCPU. */
export const QUEUES: [server: number, priority: number, qaddr: number][] = [
  [2, 5, 0x1_0000],
  [0, 6, 0x2_0000],
  [1, 6, 0x3_0000],
];
/** The (0, 6) queue starts 3 entries before its end, so that runs see the generation flip. */
export const WRAPPING_QINDEX = 16384 - 3;
export const SERVERS = [0, 1, 2];

export interface SignalRecorder {
  sink: (server: number, raised: boolean) => void;
  /** The line of each server as the last signal left it. */
  lines: Map<number, boolean>;
  events: { server: number; raised: boolean }[];
}

export function signalRecorder(): SignalRecorder {
  const lines = new Map<number, boolean>();
  const events: { server: number; raised: boolean }[] = [];
  return {
    lines,
    events,
    sink: (server, raised) => {
      lines.set(server, raised);
      events.push({ server, raised });
    },
  };
}

/**
 * A XIVE machine as a guest leaves it after boot: three vCPUs with CPPR 0xFF, three queues (one
 * about to wrap), LSIs and MSIs routed with EISN = irq and PQ 00, one source masked.
 */
export function xiveMachine(recorder = signalRecorder(), memory = new SparseGuestMemory(MIGRATION_RAM)) {
  const controller = new InterruptController(memory, { mode: "XIVE", onSignal: recorder.sink });
  controller.setNrServers(4);
  for (const server of SERVERS) controller.connectVcpu(server);
  const xive = controller.xive("setup");
  for (const [server, priority, qaddr] of QUEUES) {
    const wraps = server === 0 && priority === 6;
    xive.setQueueConfig(server, priority, eq(BigInt(qaddr), wraps ? { qindex: WRAPPING_QINDEX } : {}));
  }
  for (const irq of SOURCES) {
    controller.initSource(irq, { lsi: LSIS.includes(irq) });
    const route = ROUTES.get(irq);
    if (route) xive.setSourceConfig(irq, sourceConfig(route[0], route[1], irq));
    xive.esbLoad(irq, true, 0xc00); // the guest's SET_PQ_00
  }
  for (const server of SERVERS) xive.timaStore(server, 0x2_0011, 1, 0xffn);
  return { controller, memory, recorder };
}

/** A copy of guest RAM, byte for byte (what live migration moves before switchover). */
export function copyRam(memory: SparseGuestMemory): SparseGuestMemory {
  const copy = new SparseGuestMemory(memory.size);
  copy.write(0, memory.read(0, memory.size));
  return copy;
}

/** What a XIVE guest can observe: RAM, PQ by ESB GET, the OS ring by TIMA, queue indices, lines. */
export function observeXive(
  controller: InterruptController,
  memory: SparseGuestMemory,
  recorder: SignalRecorder,
) {
  const xive = controller.xive("observe");
  return {
    ram: Buffer.from(memory.read(0, memory.size)).toString("base64"),
    pq: SOURCES.map((irq) => [irq, xive.esbLoad(irq, true, 0x800)]),
    asserted: LSIS.map((irq) => [irq, xive.source(irq)!.asserted]),
    tima: SERVERS.map((server) => [server, xive.timaLoad(server, 0x2_0010, 8), xive.getVpState(server)[0]]),
    queues: QUEUES.map(([server, priority]) => xive.getQueueConfig(server, priority)),
    raised: SERVERS.map((server) => [
      server,
      xive.context(server)!.raised,
      recorder.lines.get(server) ?? false,
    ]),
  };
}

/** XICS machine: two vCPUs with CPPR 0xFF, the same sources claimed and given servers/priorities by RTAS. */
export function xicsMachine(recorder = signalRecorder(), memory = new SparseGuestMemory(MIGRATION_RAM)) {
  const controller = new InterruptController(memory, { mode: "XICS", onSignal: recorder.sink });
  controller.setNrServers(4);
  for (const server of SERVERS) controller.connectVcpu(server);
  const xics = controller.xics("setup");
  for (const irq of SOURCES) {
    controller.initSource(irq, { lsi: LSIS.includes(irq) });
    const route = ROUTES.get(irq);
    if (route && xics.setXive(irq, route[0], route[1]) !== RtasReturn.SUCCESS) throw new Error("set-xive");
  }
  for (const server of SERVERS) controller.hcall(server, HcallOpcode.H_CPPR, [0xffn]);
  return { controller, memory, recorder };
}

/** What a XICS guest can observe: H_IPOLL (XIRR, MFRR) per vCPU, its line, the ICS sources. */
export function observeXics(controller: InterruptController, recorder: SignalRecorder) {
  const xics = controller.xics("observe");
  return {
    icps: SERVERS.map((server) => [
      server,
      controller.hcall(server, HcallOpcode.H_IPOLL, [BigInt(server)]).outputs,
      xics.icp(server)!.pendingPriority,
      xics.icp(server)!.raised,
      recorder.lines.get(server) ?? false,
    ]),
    sources: SOURCES.map((irq) => xics.ics.read(irq)),
  };
}

/**
 * What a live migration's destination holds of guest RAM: the copy taken while the VM still ran
 * (`early`), with the pages the source's stop reported copied again from `memory`, as a VMM
 * resends them. A page the devices wrote after the early copy and the stop did not report keeps
 * its old bytes here.
 */
export function resendPages(early: SparseGuestMemory, memory: SparseGuestMemory, pages: readonly number[]) {
  for (const page of pages) {
    const address = page * memory.pageSize;
    early.write(address, memory.read(address, memory.pageSize));
  }
  return early;
}

/**
 * The destination's side of a migration: `state` imported on `ram` (a copy of the source's RAM
 * unless given), the devices' steps while it is still stopped, resume, then the guest's steps;
 * what the guest then observes there (observeXive or observeXics by the state's mode).
 */
export function continueOnDestination(
  sourceMemory: SparseGuestMemory,
  state: Uint8Array,
  stopped: (destination: InterruptController) => void,
  after: (destination: InterruptController) => void,
  ram = copyRam(sourceMemory),
) {
  const recorder = signalRecorder();
  const destination = InterruptController.importState(ram, { onSignal: recorder.sink }, state);
  stopped(destination);
  destination.resume();
  after(destination);
  return destination.activeMode === "XIVE"
    ? observeXive(destination, ram, recorder)
    : observeXics(destination, recorder);
}
