// Pre-copy tracking of an SMMU (issue 14: the stop costs what changed). The SMMU marks the
// stage-2 mapping (by IPA) and the device (by StreamID) each configuration call changes, and a
// read compares only the marked ones with the copy it keeps (SmmuChangeTracker). Rules checked:
// - every kind of change travels in the next read, and that read holds only what changed (a
//   change the marks missed fails the byte-for-byte check of the merged reads against the
//   stop-and-copy export);
// - a device or mapping nothing marked is not compared (an idle SMMU's read walks none of its
//   devices), and past the marks kept a list is compared whole.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Perm,
  decodeSmmuDelta,
  encodeSmmuDelta,
  encodeSmmuState,
  mergeSmmuDelta,
  type SmmuDelta,
  type SmmuState,
} from "../src/index.js";
import { CHANGES, DATA, runningSmmu } from "./precopy-changes.js";
import { guestSte, makeSmmu } from "./smmu-fixture.js";

/** Merges a read as the destination does (through its bytes). */
function merge(state: SmmuState | undefined, delta: SmmuDelta): SmmuState {
  return mergeSmmuDelta(state, decodeSmmuDelta(encodeSmmuDelta(delta)));
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

describe("SMMU pre-copy tracking (issue 14): every change travels, and only it", () => {
  for (const change of CHANGES) {
    it(`${change.name}: in the next read, alone; merged reads equal the export`, () => {
      const smmu = runningSmmu();
      let state = merge(undefined, smmu.readChanges(true, 0)!);
      assert.equal(smmu.readChanges(false, 0), undefined, "nothing changed yet");
      change.apply(smmu);
      const delta = smmu.readChanges(false, 0);
      assert.ok(delta, "the change is read");
      const moved = (c: { changed: unknown[]; removed: number[] }) => c.changed.length + c.removed.length;
      assert.ok(moved(delta.mappings) <= (change.moves.mappings ?? 0), "mappings");
      assert.ok(moved(delta.devices) <= (change.moves.devices ?? 0), "devices");
      state = merge(state, delta);
      smmu.quiesce(100);
      const stop = smmu.readChanges(false, 100);
      if (stop) state = merge(state, stop);
      assert.equal(hex(encodeSmmuState(state)), hex(smmu.exportState()));
    });
  }

  it("a mapping or device changed and changed back moves nothing (the marked record equals its copy)", () => {
    const smmu = runningSmmu();
    smmu.readChanges(true, 0);
    smmu.attachDevice(9, 0x19);
    smmu.detachDevice(9);
    smmu.unmapStage2(DATA, 0x20_0000);
    smmu.mapStage2(DATA, 0x200_0000, 0x20_0000, Perm.READ_WRITE);
    assert.equal(smmu.readChanges(false, 0), undefined);
  });

  it("pendingChanges reads without taking: the same delta again, then readChanges takes it", () => {
    const smmu = runningSmmu();
    smmu.readChanges(true, 0);
    smmu.attachDevice(9, 0x19);
    const pending = smmu.pendingChanges(0)!;
    assert.deepEqual(
      pending.devices.changed.map((d) => d.streamId),
      [9],
    );
    assert.deepEqual(
      smmu.pendingChanges(0)!.devices.changed.map((d) => d.streamId),
      [9],
    );
    assert.deepEqual(
      smmu.readChanges(false, 0)!.devices.changed.map((d) => d.streamId),
      [9],
    );
    assert.equal(smmu.readChanges(false, 0), undefined);
  });

  it("changes made before tracking (or after it ended) are in the first read, which holds everything", () => {
    const smmu = runningSmmu();
    smmu.attachDevice(9, 0x19);
    smmu.readChanges(true, 0);
    smmu.endTracking();
    smmu.detachDevice(9);
    const first = smmu.readChanges(false, 0)!;
    assert.deepEqual(
      first.devices.changed.map((d) => d.streamId),
      [1, 2, 3],
    );
    assert.deepEqual(first.mappings.changed.length, 2);
  });
});

describe("SMMU pre-copy reads compare only what was marked (issue 14: an idle SMMU's read walks no device)", () => {
  it("a device changed behind the model's back (no mark) is not read", () => {
    const smmu = runningSmmu();
    smmu.readChanges(true, 0);
    // Reach into the model's device map: a write that bypasses every mark.
    const devices = (smmu as unknown as { devices: Map<number, { virtualStreamId: number }> }).devices;
    devices.get(3)!.virtualStreamId = 0x33;
    assert.equal(smmu.readChanges(false, 0), undefined, "unmarked: not compared");
    smmu.setGuestSte(3, guestSte({ config: 4 }));
    assert.deepEqual(
      smmu.readChanges(false, 0)!.devices.changed.map((d) => [d.streamId, d.virtualStreamId]),
      [[3, 0x33]],
      "marked: compared, and the whole record moves",
    );
  });

  it("past the marks kept (4,096 keys between two reads) the list is compared whole, still exactly", () => {
    const { smmu } = makeSmmu();
    let state = merge(undefined, smmu.readChanges(true, 0)!);
    for (let i = 0; i < 4100; i++) smmu.mapStage2(i * 0x1000, i * 0x1000, 0x1000, Perm.READ);
    const mapped = smmu.readChanges(false, 0)!;
    assert.equal(mapped.mappings.changed.length, 4100);
    state = merge(state, mapped);
    smmu.unmapStage2(0x1000, 4098 * 0x1000);
    const unmapped = smmu.readChanges(false, 0)!;
    assert.equal(unmapped.mappings.removed.length, 4098);
    state = merge(state, unmapped);
    smmu.quiesce(0);
    assert.equal(hex(encodeSmmuState(state)), hex(smmu.exportState()));
  });
});
