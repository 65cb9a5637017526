import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SparseGuestMemory } from "@vplane/guest-memory";
import type { ControllerState } from "../src/device-state/controller-state.js";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";
import { MIGRATION_RAM, copyRam, signalRecorder, xicsMachine, xiveMachine } from "./migration-fixtures.js";

/** A quiesced XIVE machine with a raised line, its RAM and its exported state. */
function exported() {
  const machine = xiveMachine();
  machine.controller.trigger(0x1300);
  machine.controller.quiesce();
  machine.controller.trigger(0x1302);
  return { ...machine, bytes: machine.controller.exportState() };
}

/** Imports and returns the error; the signal sink must have heard nothing (nothing was built). */
function refusal(bytes: Uint8Array, memory: SparseGuestMemory): XiveError {
  const recorder = signalRecorder();
  try {
    InterruptController.importState(memory, { onSignal: recorder.sink }, bytes);
  } catch (error) {
    assert.ok(error instanceof XiveError, `a typed error, got ${String(error)}`);
    assert.deepEqual(recorder.events, [], "no vCPU line moved: nothing was built");
    return error;
  }
  throw new Error("the state was accepted");
}

/** Re-encodes the exported state after `change`. */
function altered(bytes: Uint8Array, change: (state: ControllerState) => void): Uint8Array {
  const state = decodeControllerState(bytes);
  change(state);
  return encodeControllerState(state);
}

describe("import refuses a bad state, naming the entry, with nothing built", () => {
  const { bytes, memory } = exported();

  it("an unknown format version: STATE_VERSION_UNSUPPORTED", () => {
    for (const version of [0, 2, 0xffff_ffff]) {
      const copy = bytes.slice();
      new DataView(copy.buffer).setUint32(0, version);
      const e = refusal(copy, copyRam(memory));
      assert.deepEqual(
        [e.code, e.reason, e.field],
        ["INVALID_ARGUMENT", "STATE_VERSION_UNSUPPORTED", "format_version"],
      );
    }
  });

  it("every truncation (each prefix of a valid state): STATE_TRUNCATED", () => {
    for (let length = 0; length < bytes.length; length++) {
      const e = refusal(bytes.subarray(0, length), memory);
      assert.equal(e.reason, "STATE_TRUNCATED", `prefix of ${length} bytes: ${e.message}`);
    }
  });

  it("bytes after the last list: STATE_TRAILING_BYTES; another magic: STATE_MALFORMED", () => {
    // After the contexts, XIVE's optional requested_ends list may start (here empty: n = 0).
    const longer = new Uint8Array([...bytes, 0, 0, 0, 0, 0]);
    assert.equal(refusal(longer, memory).reason, "STATE_TRAILING_BYTES");
    const e = refusal(new Uint8Array([...bytes, 0]), memory);
    assert.deepEqual([e.reason, e.field], ["STATE_TRUNCATED", "xive.requested_ends.count"]);
    const copy = bytes.slice();
    copy[4] = copy[4]! ^ 0xff;
    assert.deepEqual(
      [refusal(copy, memory).reason, refusal(copy, memory).field],
      ["STATE_MALFORMED", "magic"],
    );
  });

  it("guest RAM of another size: GUEST_MEMORY_SIZE_MISMATCH", () => {
    const e = refusal(bytes, new SparseGuestMemory(MIGRATION_RAM * 2));
    assert.deepEqual([e.reason, e.field], ["GUEST_MEMORY_SIZE_MISMATCH", "guest_memory_bytes"]);
  });

  const cases: [string, (s: ControllerState) => void, string][] = [
    [
      "a queue size KVM and PAPR do not have",
      (s) => void (s.xive!.queues[0]!.qshift = 13),
      "xive.queues[0].qshift",
    ],
    ["a misaligned queue", (s) => void (s.xive!.queues[1]!.qaddr += 0x1000), "xive.queues[1].qaddr"],
    [
      "a queue outside guest RAM",
      (s) => void (s.xive!.queues[2]!.qaddr = MIGRATION_RAM),
      "xive.queues[2].qaddr",
    ],
    [
      "a queue index wider than the END's 22-bit PAGE_OFF field",
      (s) => void (s.xive!.queues[0]!.qindex = 0x40_0000),
      "xive.queues[0].qindex",
    ],
    [
      "a queue of a server with no vCPU",
      (s) => void (s.xive!.queues[2]!.endIndex = 3 << 3),
      "xive.queues[2].end_index",
    ],
    ["a saved PQ above 3", (s) => void (s.xive!.sources[3]!.savedPq = 4), "xive.sources[3].saved_pq"],
    ["a latched PQ of 00 (not quiesced)", (s) => void (s.xive!.sources[2]!.pq = 0), "xive.sources[2].status"],
    ["an asserted MSI", (s) => void (s.xive!.sources[4]!.asserted = true), "xive.sources[4].status"],
    [
      "an END outside block 0",
      (s) => void (s.xive!.sources[2]!.endIndex = 1 << 24),
      "xive.sources[2].end_index",
    ],
    ["a duplicated vCPU server", (s) => void (s.vcpus[1]!.server = 0), "vcpus[1].server"],
    ["a vCPU server beyond nr_servers", (s) => void (s.vcpus[1]!.server = 4), "vcpus[1].server"],
    [
      "a context whose OS CAM is not its vCPU's",
      (s) => void (s.xive!.contexts[1]!.regs[0x1b] = s.xive!.contexts[1]!.regs[0x1b]! ^ 1),
      "xive.contexts[1].regs",
    ],
    [
      "a stopped trigger of a source that does not exist",
      (s) => void s.stoppedTriggers.push(0x1310),
      "stopped_triggers[1]",
    ],
    [
      "more stopped triggers than an MSI keeps",
      (s) => void s.stoppedTriggers.push(0x1302, 0x1302),
      "stopped_triggers[2]",
    ],
    ["sources out of order", (s) => void s.machineSources.reverse(), "machine_sources[1].irq"],
    [
      "a source the machine did not initialise",
      (s) => void (s.xive!.sources[0]!.irq = 0x11ff),
      "xive.sources[0].irq",
    ],
  ];
  for (const [what, change, field] of cases) {
    it(`${what}: STATE_INCONSISTENT at ${field}`, () => {
      const e = refusal(altered(bytes, change), copyRam(memory));
      assert.deepEqual(
        [e.code, e.reason, e.field],
        ["INVALID_ARGUMENT", "STATE_INCONSISTENT", field],
        e.message,
      );
    });
  }

  it("XICS: an XISR without a pending priority, and a claim the machine did not make", () => {
    const machine = xicsMachine();
    machine.controller.trigger(0x1300);
    machine.controller.quiesce();
    const xics = machine.controller.exportState();
    const noPending = altered(xics, (s) => void (s.xics!.icps[0]!.pendingPriority = 0xff));
    assert.equal(refusal(noPending, machine.memory).field, "xics.icps[0].pending_priority");
    const claimed = altered(
      xics,
      (s) => void s.xics!.sources.push({ ...s.xics!.sources.at(-1)!, nr: 0x1400 }),
    );
    assert.equal(refusal(claimed, machine.memory).field, "xics.sources");
  });

  it("garbage and single-byte corruptions never throw anything but a typed XiveError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (garbage) => void refusal(garbage, memory)),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const copy = bytes.slice();
        copy[at] = copy[at]! ^ flip;
        try {
          InterruptController.importState(copyRam(memory), {}, copy);
        } catch (error) {
          assert.ok(error instanceof XiveError, `byte ${at} ^ ${flip}: ${String(error)}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
