import { SparseGuestMemory } from "@vplane/guest-memory";
import {
  HcallOpcode,
  HcallReturn,
  InterruptController,
  decodeControllerDelta,
  encodeControllerDelta,
  encodeControllerState,
  encodeKvmSourceConfig,
  mergeControllerDelta,
  type ControllerState,
} from "@vplane/xive";
import { deviceStateRows } from "./device-state-rounds.js";
import type { BenchRow } from "./result-table.js";

/** Issue 6's benchmark point: 8,192 sources, 2,048 vCPUs with 8 queues each. */
const SOURCES = 8192;
const VCPUS = 2048;
const QUEUES_PER_VCPU = 8;
/** 64 KiB queues (Linux's size): 16,384 of them need 1 GiB of (sparse) guest RAM. */
const QUEUE_SHIFT = 16;
const RAM = 2 * 1024 * 1024 * 1024;

/**
 * A booted guest at the benchmark's size: every vCPU has a queue at each of the 8 priorities
 * (H_INT_SET_QUEUE_CONFIG; hv-prio 8 leaves priority 7 to the guest, KVM would reserve it) and
 * CPPR 0xFF; the sources are MSIs spread over the vCPUs and priorities, unmasked, and a quarter
 * of them have an event in their queue (PQ 10, IPB set).
 */
function bootedController(memory: SparseGuestMemory): InterruptController {
  const controller = new InterruptController(memory, { mode: "XIVE", nrIrqs: 0x4000, hvPriority: 8 });
  controller.setNrServers(VCPUS);
  for (let vcpu = 0; vcpu < VCPUS; vcpu++) controller.connectVcpu(vcpu);
  controller.selectMode("XIVE");
  const xive = controller.xive("bench");
  for (let vcpu = 0; vcpu < VCPUS; vcpu++) {
    for (let priority = 0; priority < QUEUES_PER_VCPU; priority++) {
      const qaddr = (vcpu * QUEUES_PER_VCPU + priority) << QUEUE_SHIFT;
      const args = [1n, BigInt(vcpu), BigInt(priority), BigInt(qaddr), BigInt(QUEUE_SHIFT)];
      const result = controller.hcall(vcpu, HcallOpcode.H_INT_SET_QUEUE_CONFIG, args);
      if (result.returnCode !== HcallReturn.H_SUCCESS) throw new Error(`queue config ${result.returnCode}`);
    }
    xive.timaStore(vcpu, 0x2_0011, 1, 0xffn);
  }
  for (let i = 0; i < SOURCES; i++) {
    const irq = 0x1000 + i;
    controller.initSource(irq);
    const config = { server: i % VCPUS, priority: i % 7, masked: false, eisn: irq };
    xive.setSourceConfig(irq, encodeKvmSourceConfig(config));
    xive.esbLoad(irq, true, 0xc00);
    if (i % 4 === 0) controller.trigger(irq);
  }
  return controller;
}

/**
 * Device-state downtime of the interrupt controller alone, in one process (no gRPC, no
 * transfer): quiesce (PQ latch + the queue pages written since the last stop), export, import into a fresh
 * controller on the same RAM, resume. Each phase is timed per round; the rows give rounds/s and
 * the p50/p99 of each phase.
 */
export function xiveMigrationBench(rounds = 30): Promise<BenchRow[]> {
  const memory = new SparseGuestMemory(RAM);
  let controller = bootedController(memory);
  let stateBytes = 0;
  const rows = deviceStateRows(
    () =>
      `xive device state (${SOURCES} sources, ${VCPUS} vCPUs × ${QUEUES_PER_VCPU} queues, ${Math.round(stateBytes / 1024)} KiB)`,
    ["quiesce (latch + written pages)", "export", "import (fresh controller)", "resume"],
    { rounds, warmUps: 3 },
    () => {
      const t0 = performance.now();
      controller.quiesce();
      const t1 = performance.now();
      const state = controller.exportState();
      const t2 = performance.now();
      const imported = InterruptController.importState(memory, {}, state);
      const t3 = performance.now();
      imported.resume();
      const t4 = performance.now();
      controller = imported;
      stateBytes = state.length;
      return [t0, t1, t2, t3, t4];
    },
  );
  // Issue 14: the same round with pre-copy, the baseline above measured in the same run. The
  // full listing moves while the guest runs (untimed); the stop hands out what changed since
  // (here: nothing but the quiesce), the destination merges it into the pre-copied state, checks
  // the result whole and builds the controller from it.
  let copied: ControllerState | undefined;
  let stopBytes = 0;
  const preCopyRows = deviceStateRows(
    () =>
      `xive device state with pre-copy (${SOURCES} sources, ${VCPUS} vCPUs × ${QUEUES_PER_VCPU} queues, ${stopBytes} B in the stop)`,
    ["quiesce (latch + written pages)", "stop: diff against the last read", "merge, check, build", "resume"],
    { rounds, warmUps: 3 },
    () => {
      copied = mergeControllerDelta(undefined, controller.readChanges(true)!);
      const t0 = performance.now();
      controller.quiesce();
      const t1 = performance.now();
      const delta = controller.readChanges(false);
      const bytes = delta ? encodeControllerDelta(delta) : new Uint8Array();
      const t2 = performance.now();
      const merged = delta ? mergeControllerDelta(copied, decodeControllerDelta(bytes)) : copied;
      const imported = InterruptController.importState(memory, {}, encodeControllerState(merged));
      const t3 = performance.now();
      imported.resume();
      const t4 = performance.now();
      controller = imported;
      stopBytes = bytes.length;
      return [t0, t1, t2, t3, t4];
    },
  );
  return Promise.resolve([...rows, ...preCopyRows]);
}
