// A first pre-copy delta read straight as the full state it makes (issue 14: the destination's
// iteration 0 without a record decoded, merged and encoded). Rules checked:
// - the bytes are those of encodeControllerState(mergeControllerDelta(undefined, delta)), XIVE
//   and XICS, with stopped triggers, and with XIVE's requested_ends list;
// - a delta that path refuses is refused with the same reason and field (layout, lists, a
//   removed key), before any state is made.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { firstDeltaAsState } from "../src/device-state/first-delta-state.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";
import { xicsMachine, xiveMachine } from "./migration-fixtures.js";
import { modelKernel } from "./model-kernel.js";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const merged = (bytes: Uint8Array) =>
  encodeControllerState(mergeControllerDelta(undefined, decodeControllerDelta(bytes)));

/** xiveMachine after a guest's SET_SOURCE_CONFIG of 0x1300 for vCPU 2, whose priority-6 queue has no page. */
function movedMachine() {
  const made = xiveMachine();
  made.controller.selectMode("XIVE");
  const args = [2n, 0x1300n, 2n, 6n, 0x1300n];
  const kernel = modelKernel(made.controller.xive("t"));
  assert.equal(made.controller.hcall(0, HcallOpcode.H_INT_SET_SOURCE_CONFIG, args, kernel).returnCode, 0);
  return made;
}

/** A machine's first read, quiesced with a trigger logged (stopped triggers in the delta). */
function firstDelta(machine: () => { controller: InterruptController }): ControllerDelta {
  const { controller } = machine();
  controller.quiesce();
  controller.trigger(0x1300);
  return controller.readChanges(true)!;
}

/** What a read throws: its reason and field. */
function refusal(read: () => unknown): [string, string | undefined] {
  try {
    read();
  } catch (e) {
    assert.ok(e instanceof XiveError, String(e));
    return [e.reason, e.field];
  }
  assert.fail("not refused");
}

describe("a first pre-copy delta read as the state it makes (issue 14)", () => {
  for (const [mode, machine] of [
    ["XIVE", xiveMachine],
    ["XICS", xicsMachine],
    ["XIVE with a source the KVM device moved (requested_ends)", movedMachine],
  ] as const) {
    it(`${mode}: the same bytes as decoding, merging and encoding it`, () => {
      const bytes = encodeControllerDelta(firstDelta(machine));
      assert.equal(hex(firstDeltaAsState(bytes)), hex(merged(bytes)));
    });
  }

  it("a delta the decode-and-merge path refuses is refused with its reason and field", () => {
    const delta = firstDelta(xiveMachine);
    const bytes = encodeControllerDelta(delta);
    const withoutVcpus = encodeControllerDelta({ ...delta, vcpus: undefined });
    const removing = encodeControllerDelta({
      ...delta,
      xive: { ...delta.xive!, queues: { ...delta.xive!.queues, removed: [3] } },
    });
    const flags = bytes.slice();
    flags[48] = 0x7; // an unknown list flag
    const cases: [string, Uint8Array, string][] = [
      ["truncated", bytes.subarray(0, bytes.length - 3), "STATE_TRUNCATED"],
      ["trailing bytes", new Uint8Array([...bytes, 0, 0, 0, 0, 0]), "STATE_TRAILING_BYTES"],
      ["a requested_ends count cut short", new Uint8Array([...bytes, 0]), "STATE_TRUNCATED"],
      ["unknown list flags", flags, "STATE_MALFORMED"],
      ["a full state", merged(bytes), "STATE_MALFORMED"],
      ["without the vCPU list", withoutVcpus, "STATE_DELTA_MISMATCH"],
      ["a queue removed", removing, "STATE_DELTA_MISMATCH"],
    ];
    for (const [name, input, reason] of cases) {
      const got = refusal(() => firstDeltaAsState(input));
      assert.deepEqual(
        got,
        refusal(() => merged(input)),
        name,
      );
      assert.equal(got[0], reason, name);
    }
  });
});
