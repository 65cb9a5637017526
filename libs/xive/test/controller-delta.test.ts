// The pre-copy delta format (issue 14, controller-delta.ts): what a refused delta answers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { XiveError } from "../src/xive-error.js";
import { MSIS, xiveMachine } from "./migration-fixtures.js";

const refused = (reason: string, field: string) => (e: unknown) =>
  e instanceof XiveError && e.code === "INVALID_ARGUMENT" && e.reason === reason && e.field === field;

describe("controller deltas: refusals", () => {
  const { controller } = xiveMachine();
  const first = controller.readChanges(true)!;
  const bytes = encodeControllerDelta(first);

  it("a full state is not a delta, nor a delta a full state (the magic tells them apart)", () => {
    assert.throws(() => decodeControllerState(bytes), refused("STATE_MALFORMED", "magic"));
    controller.quiesce();
    assert.throws(() => decodeControllerDelta(controller.exportState()), refused("STATE_MALFORMED", "magic"));
    controller.resume();
  });

  it("records out of order, unknown list flags, trailing bytes: STATE_MALFORMED / STATE_TRAILING_BYTES", () => {
    const swapped = { ...first, xive: { ...first.xive!, sources: { ...first.xive!.sources } } };
    swapped.xive.sources.changed = [...first.xive!.sources.changed].reverse();
    assert.throws(
      () => decodeControllerDelta(encodeControllerDelta(swapped)),
      refused("STATE_MALFORMED", "xive.sources.changed[1]"),
    );
    const flags = bytes.slice();
    flags[48] = 0x80;
    assert.throws(() => decodeControllerDelta(flags), refused("STATE_MALFORMED", "lists"));
    // After the contexts, XIVE's optional requested_ends list may start (here empty: n = 0).
    const longer = new Uint8Array([...bytes, 0, 0, 0, 0, 0]);
    assert.throws(
      () => decodeControllerDelta(longer),
      (e: unknown) => e instanceof XiveError && e.reason === "STATE_TRAILING_BYTES",
    );
  });

  it("a later delta without its base, or removing what the base does not hold: STATE_DELTA_MISMATCH", () => {
    controller.trigger(MSIS[0]!);
    const later = controller.readChanges(false)!;
    assert.throws(() => mergeControllerDelta(undefined, later), refused("STATE_DELTA_MISMATCH", "lists"));
    const base = mergeControllerDelta(undefined, first);
    const removing = { ...later, xive: { ...later.xive!, queues: { changed: [], removed: [7] } } };
    assert.throws(
      () => mergeControllerDelta(base, removing),
      refused("STATE_DELTA_MISMATCH", "xive.queues.removed"),
    );
    assert.equal(decodeControllerDelta(encodeControllerDelta(later)).xive!.sources.changed[0]!.irq, MSIS[0]);
  });
});
