// QEMU's EAT END of a source the KVM device routes elsewhere, through save/restore and live
// migration. QEMU's h_int_set_source_config keeps the END the guest asked for in its EAT while
// KVM's kvmppc_xive_select_target may route the source to another vCPU (hw/intc/spapr_xive.c,
// Linux arch/powerpc/kvm/book3s_xive.c). QEMU's stream carries its EAT and nothing of KVM's pick
// (vmstate_spapr_xive: nr_irqs, eat, endt; KVM has no SOURCE_CONFIG get), and its post_load hands
// each EAT END to a fresh device's SOURCE_CONFIG (spapr_xive_kvm.c kvmppc_xive_post_load), which
// selects again. Rules checked here:
// - after a restore or a migration H_INT_GET_SOURCE_CONFIG answers what it answered before (QEMU's
//   END), and the device routes the source where a fresh KVM device given that END puts it;
// - with pre-copy, whether the guest's request came before the first read, between reads or
//   after the last (in the stop's delta), and refused while stopped; the tracking notices a
//   change of QEMU's END alone (the device keeps the source where it was);
// - a state written before requested_ends existed (no list) restores as then.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import type { ControllerState } from "../src/device-state/controller-state.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { endIndexOf } from "../src/eas.js";
import { queueSlots } from "../src/end-table.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { decodeKvmSourceConfig } from "../src/kvm-attributes.js";
import { restoredSourceConfig } from "../src/restored-source-config.js";
import { XiveDevice } from "../src/xive-device.js";
import { SourceConfigFlag } from "../src/spapr-hcalls.js";
import { XiveError } from "../src/xive-error.js";
import { sourceConfig } from "./fixtures.js";
import { modelKernel } from "./model-kernel.js";
import { LSIS, QUEUES, SERVERS, SOURCES, copyRam, xiveMachine } from "./migration-fixtures.js";

const MSI = 0x1300; // routed to (0, 6), EISN 0x1300
const FILLER = 0x1302; // routed to (1, 6)

/** A guest's H_INT_SET_SOURCE_CONFIG of MSI (EISN unchanged) as QEMU makes it with the KVM device. */
function askFor(c: InterruptController, server: number, priority: number): number {
  const kernel = modelKernel(c.xive("kernel"));
  const args = [SourceConfigFlag.SET_EISN, BigInt(MSI), BigInt(server), BigInt(priority), BigInt(MSI)];
  return c.hcall(0, HcallOpcode.H_INT_SET_SOURCE_CONFIG, args, kernel).returnCode;
}

const getSourceConfig = (c: InterruptController) =>
  c.hcall(0, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, BigInt(MSI)]).outputs;

/** Every source slot of vCPU 1's priority-6 queue taken (each EISN change takes one; none comes back). */
function fillQueueOfServer1(c: InterruptController): void {
  const xive = c.xive("fill");
  const full = endIndexOf(1, 6);
  for (let eisn = 1; xive.router.ends!.kvmCount[full]! < queueSlots(16); eisn++)
    xive.setSourceConfig(FILLER, sourceConfig(1, 6, eisn));
}

/**
 * How the guest's request meets the device, and where a fresh KVM device given QEMU's END puts
 * the source: vCPU 1's queue full here has room on the fresh device (its count starts from the
 * sources routed to it), so the source goes there; vCPU 2 has no priority-6 queue anywhere, so
 * the source lands on vCPU 0's again and QEMU's END stays apart.
 */
const MOVES = [
  { name: "vCPU 1's queue full", prepare: fillQueueOfServer1, server: 1, restoredServer: 1 },
  { name: "vCPU 2 without a priority-6 queue", prepare: () => undefined, server: 2, restoredServer: 0 },
];

/** The machine after CAS (the H_INT_* calls answer), with `move` prepared. */
function machine(move: (typeof MOVES)[number]) {
  const made = xiveMachine();
  made.controller.selectMode("XIVE");
  move.prepare(made.controller);
  return made;
}

/** The guest asks for `move.server`: the device takes it and keeps MSI on vCPU 0's queue. */
function requestMove(c: InterruptController, move: (typeof MOVES)[number]): void {
  assert.equal(askFor(c, move.server, 6), 0);
  assert.equal(c.xive("t").source(MSI)!.server, 0, "the device picked vCPU 0, where the source was");
}

/** Merges a read as the destination does (through its bytes). */
function merge(state: ControllerState | undefined, delta: ControllerDelta | undefined): ControllerState {
  if (delta === undefined) return state!;
  return mergeControllerDelta(state, decodeControllerDelta(encodeControllerDelta(delta)));
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** After resume: QEMU's answer and the device's routing. */
function seenAfterResume(c: InterruptController) {
  c.resume();
  return { answer: getSourceConfig(c), server: c.xive("t").source(MSI)!.server };
}

describe("QEMU's END of a source the KVM device moved, saved and restored (requested_ends)", () => {
  for (const move of MOVES) {
    it(`${move.name}: GET_SOURCE_CONFIG answers as before; the device routes from QEMU's END`, () => {
      const { controller, memory } = machine(move);
      requestMove(controller, move);
      const answer = getSourceConfig(controller);
      assert.equal(answer[0], move.server === 1 ? 1n : 0xffff_fc00n, "QEMU's END, as QEMU answers it");
      controller.quiesce();
      const restored = InterruptController.importState(copyRam(memory), {}, controller.exportState());
      assert.deepEqual(seenAfterResume(restored), { answer, server: move.restoredServer });
    });
  }

  for (const move of MOVES) {
    it(`${move.name}: a restore hands a fresh KVM device QEMU's END, from which it routes each source as the restored model does`, () => {
      // QEMU's post_load gives the device its EAT's END (kvmppc_xive_post_load); the native
      // backend's replay makes the same SOURCE_CONFIG calls (restoredSourceConfig).
      const { controller, memory } = machine(move);
      requestMove(controller, move);
      controller.quiesce();
      const restored = InterruptController.importState(copyRam(memory), {}, controller.exportState()).xive(
        "t",
      );
      assert.deepEqual(decodeKvmSourceConfig(restoredSourceConfig(restored, MSI)), {
        server: move.server,
        priority: 6,
        eisn: MSI,
        masked: false,
      });
      // A fresh device (the kernel's, here the model's controls) given the restored queues, then
      // each unmasked source's SOURCE_CONFIG in LISN order.
      const kernel = new XiveDevice(new SparseGuestMemory(memory.size));
      kernel.setNrServers(4);
      for (const server of SERVERS) kernel.connectVcpu(server);
      for (const [server, priority] of QUEUES)
        kernel.setQueueConfig(server, priority, restored.getQueueConfig(server, priority)!);
      const routed = (device: XiveDevice) =>
        SOURCES.map((irq) => device.source(irq)!).map(({ irq, masked, server, priority }) => ({
          irq,
          masked,
          server,
          priority,
        }));
      for (const irq of SOURCES) {
        kernel.initSource(irq, { lsi: LSIS.includes(irq) });
        if (!restored.source(irq)!.masked) kernel.setSourceConfig(irq, restoredSourceConfig(restored, irq));
      }
      assert.deepEqual(routed(kernel), routed(restored));
      assert.equal(kernel.source(MSI)!.server, move.restoredServer);
    });
  }

  it("the list is additive: without it, the bytes a writer from before it wrote, restored as then", () => {
    const move = MOVES[1]!;
    const { controller, memory } = machine(move);
    requestMove(controller, move);
    controller.quiesce();
    const bytes = controller.exportState();
    const state = decodeControllerState(bytes);
    const moved = state.xive!.sources.find((s) => s.irq === MSI)!;
    assert.equal(moved.requestedEnd, endIndexOf(2, 6));
    // A writer from before the list knew only the device's routing.
    moved.requestedEnd = moved.endIndex;
    const old = encodeControllerState(state);
    const list = [0, 0, 0, 1, ...[0, 0, 0x13, 0x00], ...[0, 0, 0, endIndexOf(2, 6)]];
    assert.equal(hex(bytes), hex(new Uint8Array([...old, ...list])), "the same bytes, then the list");
    const restored = InterruptController.importState(copyRam(memory), {}, old);
    assert.deepEqual(seenAfterResume(restored), { answer: [0n, 6n, BigInt(MSI)], server: 0 });
  });

  it("a list naming no moved source, at another priority or no vCPU is refused (STATE_INCONSISTENT)", () => {
    const { controller, memory } = machine(MOVES[1]!);
    requestMove(controller, MOVES[1]!);
    controller.quiesce();
    const state = decodeControllerState(controller.exportState());
    const index = state.xive!.sources.findIndex((s) => s.irq === MSI);
    const refusal = (requestedEnd: number, masked = false) => {
      const copy = structuredClone(state);
      Object.assign(copy.xive!.sources[index]!, { requestedEnd, masked });
      try {
        InterruptController.importState(copyRam(memory), {}, encodeControllerState(copy));
      } catch (error) {
        assert.ok(error instanceof XiveError);
        return [error.reason, error.field];
      }
      return undefined;
    };
    const field = `xive.sources[${index}].requested_end`;
    assert.deepEqual(refusal(endIndexOf(2, 5)), ["STATE_INCONSISTENT", field], "another priority");
    assert.deepEqual(refusal(endIndexOf(3, 6)), ["STATE_INCONSISTENT", field], "no vCPU has server 3");
    assert.deepEqual(refusal(endIndexOf(2, 6), true), ["STATE_INCONSISTENT", field], "a masked source");
  });
});

describe("QEMU's END of a source the KVM device moved, through pre-copy (issue 14)", () => {
  const timings = ["before the first read", "between reads", "after the last read"] as const;
  for (const move of MOVES) {
    for (const when of timings) {
      it(`${move.name}, asked ${when}: merged reads equal the export; both finishes answer as before`, () => {
        const { controller, memory } = machine(move);
        if (when === timings[0]) requestMove(controller, move);
        let state = merge(undefined, controller.readChanges(true));
        if (when === timings[1]) requestMove(controller, move);
        state = merge(state, controller.readChanges(false));
        if (when === timings[2]) requestMove(controller, move);
        const answer = getSourceConfig(controller);
        // The destination's controller made from the iterations, before the stop.
        const prepared = InterruptController.importState(copyRam(memory), {}, encodeControllerState(state));
        controller.quiesce();
        // While stopped, the guest makes no call: one is refused and changes nothing.
        assert.throws(
          () => askFor(controller, 0, 6),
          (e: unknown) => e instanceof XiveError && e.reason === "CONTROLLER_QUIESCED",
        );
        const stop = controller.readChanges(false);
        state = merge(state, stop);
        assert.equal(hex(encodeControllerState(state)), hex(controller.exportState()));
        const whole = InterruptController.importState(copyRam(memory), {}, encodeControllerState(state));
        const expected = { answer, server: move.restoredServer };
        assert.deepEqual(seenAfterResume(whole), expected, "imported whole from the merged reads");
        if (stop !== undefined)
          assert.ok(prepared.applyStopDelta(decodeControllerDelta(encodeControllerDelta(stop))));
        assert.deepEqual(seenAfterResume(prepared), expected, "the stop's delta applied in place");
      });
    }
  }
});
