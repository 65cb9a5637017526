// Taking back a configuring hypercall that succeeded (hcall-undo.ts), for a caller whose durable
// record of it could not be written: no half-applied change. Rules checked here:
// - QEMU's emulated device (no KVM device): the saved state is what it was before the call, the
//   EAS of a masked source (its END and EISN) and QEMU's END of a moved source included;
// - with the KVM device (the model's controls as the kernel): the device gets the source's
//   routing and the queue (live generation and index) back, and H_INT_GET_SOURCE_CONFIG answers
//   QEMU's END as before the call;
// - the calls with no inverse (H_INT_RESET) or refused arguments have no undo.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { endIndexOf } from "../src/eas.js";
import { HcallOpcode, HcallReturn } from "../src/hcall-codes.js";
import type { InKernelXive } from "../src/in-kernel-xive.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { QUEUE_ALWAYS_NOTIFY, SourceConfigFlag } from "../src/spapr-hcalls.js";
import { MASKED_SOURCE, xiveMachine } from "./migration-fixtures.js";
import { modelKernel } from "./model-kernel.js";

const MSI = 0x1300; // routed to (0, 6), EISN 0x1300

function machine() {
  const { controller } = xiveMachine();
  controller.selectMode("XIVE");
  return controller;
}

/** The call, checked to succeed, after taking its undo. */
function callWithUndo(c: InterruptController, opcode: number, args: bigint[], kernel?: InKernelXive) {
  const undo = c.hcallUndo(opcode, args, kernel);
  assert.equal(c.hcall(0, opcode, args, kernel).returnCode, HcallReturn.H_SUCCESS);
  assert.ok(undo);
  return undo;
}

const setSource = (
  lisn: number,
  server: number,
  priority: number,
  eisn: number,
  flags: bigint = SourceConfigFlag.SET_EISN,
) => [flags, BigInt(lisn), BigInt(server), BigInt(priority), BigInt(eisn)];
const getSourceConfig = (c: InterruptController, lisn: number) =>
  c.hcall(0, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, BigInt(lisn)]).outputs;

describe("taking back a configuring H_INT_* call (hcall-undo.ts)", () => {
  it("QEMU's emulated device: SET_SOURCE_CONFIG (to an END without a queue, then masked with its END kept) taken back leaves the saved state as before", () => {
    const c = machine();
    const before = c.xive("t").captureState();
    const undo = callWithUndo(c, HcallOpcode.H_INT_SET_SOURCE_CONFIG, setSource(MSI, 2, 6, 0x42));
    assert.equal(c.xive("t").source(MSI)!.server, 2, "the emulated device takes the END asked for");
    undo();
    assert.deepEqual(c.xive("t").captureState(), before);
    // A masked source whose EAS keeps an END and EISN (SET_SOURCE_CONFIG with MASK).
    const masked = setSource(MASKED_SOURCE, 1, 6, 0x77, SourceConfigFlag.SET_EISN | SourceConfigFlag.MASK);
    assert.equal(c.hcall(0, HcallOpcode.H_INT_SET_SOURCE_CONFIG, masked).returnCode, HcallReturn.H_SUCCESS);
    const maskedBefore = c.xive("t").captureState();
    callWithUndo(c, HcallOpcode.H_INT_SET_SOURCE_CONFIG, setSource(MASKED_SOURCE, 0, 6, 0x78))();
    assert.deepEqual(c.xive("t").captureState(), maskedBefore);
  });

  it("QEMU's emulated device: SET_QUEUE_CONFIG (a 4 KiB queue without ALWAYS_NOTIFY over a used one, then a reset) taken back leaves the saved state as before", () => {
    const c = machine();
    c.trigger(MSI); // the (0, 6) queue's index moves
    const before = c.xive("t").captureState();
    const fourK = [0n, 0n, 6n, 0x8_0000n, 12n];
    callWithUndo(c, HcallOpcode.H_INT_SET_QUEUE_CONFIG, fourK)();
    assert.deepEqual(c.xive("t").captureState(), before);
    callWithUndo(c, HcallOpcode.H_INT_SET_QUEUE_CONFIG, [0n, 0n, 6n, 0n, 0n])();
    assert.deepEqual(c.xive("t").captureState(), before);
  });

  it("with the KVM device: a source moved off a queue without a page, asked elsewhere, taken back: GET_SOURCE_CONFIG answers QEMU's END again, the device routes it where it was", () => {
    const c = machine();
    const kernel = modelKernel(c.xive("kernel"));
    // vCPU 2 has no priority-6 queue: the device keeps MSI on vCPU 0's, QEMU's END is 2/6.
    callWithUndo(c, HcallOpcode.H_INT_SET_SOURCE_CONFIG, setSource(MSI, 2, 6, MSI), kernel);
    const answer = getSourceConfig(c, MSI);
    // QEMU answers the target from the END's NVT: an END never configured reads as 0xFFFFFC00.
    assert.deepEqual(answer, [0xffff_fc00n, 0n, BigInt(MSI)]);
    const before = c.xive("t").captureState();
    const undo = callWithUndo(c, HcallOpcode.H_INT_SET_SOURCE_CONFIG, setSource(MSI, 1, 6, 0x99), kernel);
    assert.equal(c.xive("t").source(MSI)!.server, 1);
    undo();
    assert.deepEqual(getSourceConfig(c, MSI), answer);
    assert.equal(c.xive("t").source(MSI)!.server, 0);
    // KVM's slot counts never go back (each routing took one): all else is as before.
    const withoutCounts = (state: typeof before) => ({
      ...state,
      queues: state.queues.map(({ targetedSources: _, ...queue }) => queue),
    });
    assert.deepEqual(withoutCounts(c.xive("t").captureState()), withoutCounts(before));
  });

  it("with the KVM device: SET_QUEUE_CONFIG over a used queue taken back gives the device the queue with its live generation and index", () => {
    const c = machine();
    const xive = c.xive("t");
    const kernel = modelKernel(xive);
    c.trigger(MSI);
    c.trigger(0x1302); // the (1, 6) queue
    const queue = () => xive.getQueueConfig(1, 6);
    const before = queue();
    assert.equal(before!.qindex, 1);
    const args = [QUEUE_ALWAYS_NOTIFY, 1n, 6n, 0x8_0000n, 16n];
    const undo = callWithUndo(c, HcallOpcode.H_INT_SET_QUEUE_CONFIG, args, kernel);
    assert.deepEqual([queue()!.qaddr, queue()!.qindex], [0x8_0000n, 0]);
    undo();
    assert.deepEqual(queue(), before);
    assert.ok(xive.ends!.isValid(endIndexOf(1, 6)));
  });

  it("H_INT_RESET (no inverse in the KVM device), a read, a refused LISN or priority: no undo", () => {
    const c = machine();
    assert.equal(c.hcallUndo(HcallOpcode.H_INT_RESET, [0n]), undefined);
    assert.equal(c.hcallUndo(HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, BigInt(MSI)]), undefined);
    assert.equal(c.hcallUndo(HcallOpcode.H_INT_SET_SOURCE_CONFIG, setSource(0x1400, 0, 6, 1)), undefined);
    assert.equal(c.hcallUndo(HcallOpcode.H_INT_SET_QUEUE_CONFIG, [0n, 0n, 7n, 0n, 0n]), undefined);
    assert.equal(c.hcallUndo(HcallOpcode.H_INT_SET_QUEUE_CONFIG, [0n, 3n, 6n, 0n, 0n]), undefined);
  });
});
