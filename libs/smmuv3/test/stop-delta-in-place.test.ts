// A stop-and-copy delta applied in place to the SMMU the destination built during pre-copy
// (issue 14, point 2: inside the downtime the destination only applies a delta). Rules checked:
// - for every kind of change the source's tracking reads (precopy-changes), the SMMU changed in
//   place exports byte for byte what an SMMU imported whole from the source's final export
//   does, and translates alike;
// - a delta that does not fit the SMMU (a record a full import refuses, or a removal of what it
//   does not hold) is refused with the full import's reason before anything changes; a delta of
//   another shape (other limits) is not applied in place (false, nothing changed).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Perm,
  Smmu,
  SmmuError,
  decodeSmmuDelta,
  encodeSmmuDelta,
  mergeSmmuDelta,
  type SmmuDelta,
} from "../src/index.js";
import { CHANGES, DATA, VA, runningMachine } from "./precopy-changes.js";

/** A delta as the destination reads it (through its bytes). */
const wire = (delta: SmmuDelta) => decodeSmmuDelta(encodeSmmuDelta(delta));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/**
 * The destination's SMMU built from the source's first pre-copy read (on the source's RAM: the
 * RAM migration leaves the same bytes), then the source changed by `change`, stopped, and its
 * stop delta as the destination reads it.
 */
function prepared(change: (source: Smmu) => void) {
  const { smmu: source, memory } = runningMachine();
  const first = wire(source.readChanges(true, 0)!);
  const built = Smmu.importState(memory, { vmid: 3, now: 50 }, mergeSmmuDelta(undefined, first));
  change(source);
  source.quiesce(100);
  const stop = source.readChanges(false, 100);
  return { source, built, memory, stop: stop && wire(stop) };
}

/** What a guest sees through an SMMU: its translations of a few IOVAs of each device. */
function translations(smmu: Smmu): unknown[] {
  return [1, 2, 3, 9].flatMap((sid) =>
    [VA, VA + 0x1000, DATA, 0x9000_0000].map((iova) => {
      const r = smmu.translateUncached(sid, undefined, iova, false);
      return [sid, iova, r.outcome, r.address, r.event?.id];
    }),
  );
}

/** Refused with `reason` naming `field`; the SMMU unchanged. */
function refused(built: Smmu, delta: SmmuDelta, reason: string, field: string): void {
  const before = built.exportState();
  assert.throws(
    () => built.applyStopDelta(delta),
    (e: unknown) => e instanceof SmmuError && e.reason === reason && e.field === field,
  );
  assert.equal(hex(built.exportState()), hex(before), "nothing applied");
}

describe("SMMU stop delta applied in place (issue 14: the destination's finish costs what changed)", () => {
  for (const change of CHANGES) {
    it(`${change.name}: the SMMU changed in place equals one imported whole from the final export`, () => {
      const { source, built, memory, stop } = prepared((s) => change.apply(s));
      assert.ok(stop, "the change is in the stop delta");
      assert.equal(built.applyStopDelta(stop), true);
      const final = source.exportState();
      const whole = Smmu.importState(memory, { vmid: 3, now: 50 }, final);
      assert.equal(hex(built.exportState()), hex(whole.exportState()));
      assert.equal(hex(built.exportState()), hex(final));
      built.resume(200);
      whole.resume(200);
      assert.deepEqual(translations(built), translations(whole));
      assert.deepEqual(built.takeDeliveries(), whole.takeDeliveries(), "held events and page requests");
    });
  }

  it("a delta that does not fit the SMMU is refused whole, as a full import refuses it; nothing changes", () => {
    const { built, source, stop } = prepared((s) => {
      s.mapStage2(0x8000_0000, 0x400_0000, 0x1000, Perm.READ);
      s.attachDevice(9, 0x19);
    });
    const bad = () => structuredClone(stop!);
    let d = bad();
    d.mappings.removed.push(0x7000_0000); // not mapped there
    refused(built, d, "STATE_DELTA_MISMATCH", "mappings.removed[0]");
    d = bad();
    d.mappings.changed[0]!.ipa = DATA + 0x1000; // inside a mapping the delta keeps
    d.state.mappings = d.mappings.changed;
    refused(built, d, "STATE_INCONSISTENT", "mappings.changed[0].ipa");
    d = bad();
    d.mappings.changed[0]!.hostAddress = 2 ** 32; // past the guest RAM backing
    refused(built, d, "STATE_INCONSISTENT", "mappings.changed[0].hostAddress");
    d = bad();
    d.devices.changed[0]!.virtualStreamId = 0x11; // device 1's
    refused(built, d, "STATE_INCONSISTENT", "devices.changed[0].virtual_stream_id");
    d = bad();
    d.devices.changed[0]!.guestSte = [1n | (7n << 1n), 0n]; // Config 7: arm_smmu_validate_vste's EIO
    refused(built, d, "STATE_INCONSISTENT", "devices.changed[0].ste[0]");
    d = bad();
    d.devices.removed.push(4); // no device 4
    refused(built, d, "STATE_DELTA_MISMATCH", "devices.removed[0]");
    d = bad();
    d.devices.removed.push(3);
    d.devices.changed.unshift({
      streamId: 3,
      virtualStreamId: 0x23,
      pageRequests: false,
      guestSte: undefined,
    });
    refused(built, d, "STATE_DELTA_MISMATCH", "devices.changed[0].stream_id"); // both removed and changed
    d = bad();
    d.state.pasidTable = { kind: "bypass" }; // devices 1 and 2 keep their guest STEs
    refused(built, d, "STATE_INCONSISTENT", "pasid_table");
    d = bad();
    d.state.pageRequests = [
      {
        cookie: 1,
        streamId: 4,
        virtualStreamId: 0x14,
        substreamId: undefined,
        groupId: 0,
        flags: 2,
        perm: 1,
        address: 0n,
        remainingMs: 1,
        held: false,
        eventsBefore: 0,
      },
    ];
    refused(built, d, "STATE_INCONSISTENT", "page_requests[0].stream_id");
    d = bad();
    d.state.msi = { giova: 0xfee0_0000, gpa: 0x80_0000, size: 0x3000 }; // not a power of two
    refused(built, d, "STATE_INCONSISTENT", "msi.size");
    assert.equal(built.applyStopDelta(stop!), true, "the delta itself still applies");
    assert.equal(hex(built.exportState()), hex(source.exportState()));
  });

  it("a delta of other guest-visible limits is not applied in place (false, nothing changed)", () => {
    const { built, stop } = prepared((s) => s.attachDevice(9, 0x19));
    const other = structuredClone(stop!);
    other.state.eventQueueDepth = 8;
    const before = built.exportState();
    assert.equal(built.applyStopDelta(other), false);
    assert.equal(hex(built.exportState()), hex(before));
  });
});
