import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SparseGuestMemory } from "@vplane/guest-memory";
import {
  EventId,
  HWPT_FAULT_ID_VALID,
  PageResponseCode,
  Perm,
  SMMU_STATE_FORMAT_VERSION,
  Smmu,
  SmmuError,
  buildCommand,
  decodeSmmuState,
  encodeSmmuState,
  type SmmuState,
} from "../src/index.js";
import { guestSte, identityStage2, makeSmmu, seedPasidTable, stage1Device } from "./smmu-fixture.js";

/** The SmmuError `fn` throws (the test fails if it returns). */
function refusal(fn: () => unknown): SmmuError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SmmuError, String(error));
    return error;
  }
  assert.fail("expected a refusal");
}

/** Deep copy through JSON (bigints as strings), dropping keys whose value is undefined. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)));
}

/** A copy of the pages of guest RAM written so far (the dirty log since it was last taken). */
function copyOf(memory: SparseGuestMemory, pages = memory.peekDirtyPages()): SparseGuestMemory {
  const copy = new SparseGuestMemory(memory.size);
  for (const page of pages) {
    copy.write(page * memory.pageSize, memory.read(page * memory.pageSize, memory.pageSize));
  }
  return copy;
}

/**
 * Quiesces `smmu` as a migration does after copying RAM, and returns the destination's RAM:
 * the copy, with the pages quiesce reports (written by the SMMU's DMA) sent again.
 */
function quiesceAndCopy(smmu: Smmu, memory: SparseGuestMemory, now = 0): SparseGuestMemory {
  const copy = copyOf(memory);
  for (const page of smmu.quiesce(now).dirtyPages) {
    copy.write(page * memory.pageSize, memory.read(page * memory.pageSize, memory.pageSize));
  }
  return copy;
}

const VA = 0x1000_0000;
const DATA = 0x4000_0000;

/**
 * An SMMU as a running guest leaves it: a nested device (iommufd guest STE, EATS set), a device
 * whose faults become page requests (HWPT linked to a fault queue), a stage-2-only device, stage
 * 2 with two mappings, an MSI doorbell, a small event queue.
 */
function runningGuest() {
  const { smmu, memory } = makeSmmu({ limits: { eventQueueDepth: 3, pageRequestTimeoutMs: 1000 } });
  smmu.mapStage2(0, 0, 0x100_0000, Perm.READ_WRITE);
  smmu.mapStage2(DATA, 0x200_0000, 0x20_0000, Perm.READ_WRITE);
  const nested = stage1Device(smmu, memory, { sid: 1, vsid: 0x11, asid: 5 });
  smmu.setGuestSte(1, guestSte({ contextPtr: 0x8000, eats: 1 }));
  nested.map(VA, DATA + 0x3000);
  nested.map(VA + 0x1000, DATA + 0x4000);
  const pri = stage1Device(smmu, memory, { sid: 2, vsid: 0x12, asid: 6, cd: 0x8040, tablesAt: 0x18_0000 });
  smmu.setGuestSte(2, guestSte({ contextPtr: 0x8040 }), HWPT_FAULT_ID_VALID);
  pri.map(VA, DATA + 0x5000);
  smmu.attachDevice(3, 0x13);
  smmu.bindMsi(0xfee0_0000, 0x0800_0000, 0x1000);
  return { smmu, memory, nested, pri };
}

describe("quiesce and resume (issue 6: the SMMU holds new events while stopped)", () => {
  it("events and page requests raised while quiesced are held, then delivered after resume in the order raised", () => {
    const { smmu } = runningGuest();
    smmu.translate(1, undefined, VA + 0x10_0000, false); // F_TRANSLATION event
    assert.equal(smmu.takeDeliveries().length, 1);
    smmu.quiesce(100);
    const fault = smmu.translate(1, undefined, VA + 0x20_0000, true, { now: 150 });
    const request = smmu.translate(2, undefined, VA + 0x30_0000, false, { now: 160 });
    smmu.translate(1, undefined, VA + 0x40_0000, false, { now: 170 });
    assert.deepEqual([fault.outcome, fault.recorded, request.outcome], ["fault", true, "page-request"]);
    assert.deepEqual(smmu.takeDeliveries(), []);
    assert.deepEqual(smmu.readEvents(), []);
    assert.equal(smmu.deliveredCount, 1);
    smmu.resume(500);
    const delivered = smmu.takeDeliveries();
    assert.deepEqual(
      delivered.map((d) => (d.kind === "event" ? d.queued.sequence : `pr${d.request.cookie}`)),
      [1, `pr${request.pageRequest!.cookie}`, 2],
    );
    assert.equal(smmu.deliveredCount, 4);
  });

  it("guest and configuration calls and DMA writes are FAILED_PRECONDITION SMMU_QUIESCED; translations and DMA reads run", () => {
    const { smmu } = runningGuest();
    const cookie = smmu.translate(2, undefined, VA + 0x30_0000, false).pageRequest!.cookie;
    smmu.quiesce();
    const refused: [string, () => unknown][] = [
      ["MapStage2", () => smmu.mapStage2(0x8000_0000, 0, 0x1000, Perm.READ)],
      ["UnmapStage2", () => smmu.unmapStage2(DATA, 0x20_0000)],
      ["AttachDevice", () => smmu.attachDevice(9, 9)],
      ["DetachDevice", () => smmu.detachDevice(3)],
      ["AttachPasidTable", () => smmu.setGuestSte(3, guestSte({ config: 4 }))],
      ["DetachPasidTable", () => smmu.clearGuestSte(1)],
      ["Invalidate", () => smmu.invalidateCommands([buildCommand.nhAll()])],
      ["BindMsi", () => smmu.bindMsi(0xfee0_0000, 0x0800_0000, 0x1000)],
      ["UnbindMsi", () => smmu.unbindMsi(0xfee0_0000)],
      ["RespondPageRequest", () => smmu.respondPageRequest(cookie, PageResponseCode.SUCCESS)],
      ["DmaWrite", () => smmu.dmaWrite(1, undefined, VA, new Uint8Array(4))],
    ];
    for (const [operation, call] of refused) {
      const e = refusal(call);
      assert.deepEqual([e.code, e.reason], ["FAILED_PRECONDITION", "SMMU_QUIESCED"], operation);
      assert.match(e.message, new RegExp(operation));
    }
    assert.equal(smmu.translate(1, undefined, VA + 8, false).address, 0x200_3008);
    assert.equal(smmu.dmaRead(1, undefined, VA, 4).outcome, "completed");
    assert.equal(smmu.listPageRequests().length, 1, "nothing expires while stopped");
    assert.deepEqual(smmu.expirePageRequests(1e9), []);
    smmu.resume();
    smmu.mapStage2(0x8000_0000, 0, 0x1000, Perm.READ);
  });

  it("quiesce returns the pages the SMMU's DMA wrote since the previous quiesce; a second call the same", () => {
    const { smmu, memory } = runningGuest();
    memory.takeDirtyPages(); // the test's own table writes
    assert.equal(smmu.dmaWrite(1, undefined, VA + 0xffe, new Uint8Array(4)).outcome, "completed");
    const first = smmu.quiesce(0);
    assert.deepEqual(first.dirtyPages, [0x2003, 0x2004]);
    assert.deepEqual(smmu.quiesce(5), first);
    smmu.resume(10);
    assert.deepEqual(smmu.quiesce(20).dirtyPages, []);
  });

  it("page-request deadlines stop with the SMMU: the time left when it stopped is what it has after resume", () => {
    const { smmu } = runningGuest();
    smmu.translate(2, undefined, VA + 0x30_0000, false, { now: 0 }); // deadline 1000
    smmu.quiesce(400); // 600 ms left
    smmu.translate(2, undefined, VA + 0x31_0000, false, { now: 700 }); // raised while stopped: 1000 ms
    smmu.resume(10_000);
    assert.deepEqual(
      smmu.listPageRequests().map((r) => r.deadline),
      [10_600, 11_000],
    );
    assert.deepEqual(smmu.expirePageRequests(10_599), []);
    assert.equal(smmu.expirePageRequests(10_600).length, 1);
  });
});

describe("export and import (issue 6: versioned state, caches not exported)", () => {
  it("export is FAILED_PRECONDITION SMMU_NOT_QUIESCED while running", () => {
    const { smmu } = runningGuest();
    const e = refusal(() => smmu.exportState());
    assert.deepEqual([e.code, e.reason], ["FAILED_PRECONDITION", "SMMU_NOT_QUIESCED"]);
  });

  it("an imported SMMU translates and DMAs as the original, with empty caches; held events, page requests and counters carry over", () => {
    const { smmu, memory } = runningGuest();
    smmu.translate(1, undefined, VA, false); // fills the IOTLB
    for (let i = 0; i < 4; i++) smmu.translate(3, undefined, 0x9000_0000 + i * 0x1000, false); // 3 events + lost
    smmu.takeDeliveries(2);
    const request = smmu.translate(2, undefined, VA + 0x30_0000, true, { now: 0 }).pageRequest!;
    const copy = quiesceAndCopy(smmu, memory, 100);
    const held = smmu.translate(2, undefined, VA + 0x31_0000, false, { now: 200 }).pageRequest!;
    const bytes = smmu.exportState();
    assert.equal(new DataView(bytes.buffer).getUint32(0, true), SMMU_STATE_FORMAT_VERSION);

    const imported = Smmu.importState(copy, { vmid: 9, now: 5000 }, bytes);
    assert.equal(imported.quiesced, true);
    assert.equal(imported.vmid, 9);
    const dump = imported.dump();
    assert.deepEqual([dump.iotlb.size, dump.devices.map((d) => d.cachedContextDescriptors)], [0, [0, 0, 0]]);
    assert.deepEqual(plain(dump.stage2.mappings), plain(smmu.dump().stage2.mappings));
    assert.deepEqual(dump.msiBinding, smmu.dump().msiBinding);
    assert.deepEqual(
      imported.listDevices().map((d) => [d.streamId, d.virtualStreamId, d.pageRequests, d.guestSte?.words]),
      smmu.listDevices().map((d) => [d.streamId, d.virtualStreamId, d.pageRequests, d.guestSte?.words]),
    );
    assert.deepEqual(imported.listDevices()[0]!.guestSte?.stage1, smmu.listDevices()[0]!.guestSte?.stage1);
    assert.equal(imported.deliveredCount, smmu.deliveredCount);

    smmu.resume(6000);
    imported.resume(6000);
    const fromOriginal = smmu.takeDeliveries();
    assert.deepEqual(plain(imported.takeDeliveries()), plain(fromOriginal));
    assert.deepEqual(
      fromOriginal.map((d) =>
        d.kind === "event" ? (d.queued.lost ? "lost" : d.queued.sequence) : d.request.cookie,
      ),
      [2, "lost", request.cookie, held.cookie],
    );
    assert.deepEqual(plain(imported.listPageRequests()), plain(smmu.listPageRequests()));

    for (const s of [smmu, imported]) {
      const t = s.translate(1, undefined, VA + 0x24, true);
      // The original's IOTLB still holds the entry; the imported one starts empty.
      assert.deepEqual([t.outcome, t.address, t.sizeBits, t.hit], ["translated", 0x200_3024, 12, s === smmu]);
      assert.equal(s.dmaWrite(1, undefined, VA + 0x100, new Uint8Array([1, 2, 3])).outcome, "completed");
      assert.deepEqual(s.dmaRead(1, undefined, VA + 0x100, 3).data, new Uint8Array([1, 2, 3]));
      assert.equal(s.dmaWrite(3, undefined, 0x0800_0040, new Uint8Array([7])).msiWrites.length, 1);
      assert.equal(s.translate(3, undefined, 0x9100_0000, false).event?.id, EventId.F_TRANSLATION);
      const [next] = s.takeDeliveries();
      assert.deepEqual(next?.kind === "event" && [next.queued.sequence, next.queued.lost], [4, false]);
      s.respondPageRequest(request.cookie, PageResponseCode.SUCCESS);
      const again = s.translate(2, undefined, VA + 0x32_0000, false, { now: 6100 }).pageRequest!;
      assert.equal(again.cookie, held.cookie + 1);
    }
    assert.deepEqual(copy.read(0x200_3100, 3), memory.read(0x200_3100, 3));
  });

  it("the seed form (ATTACH_PASID_TABLE) carries over", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    const tables = stage1Device(smmu, memory, { sid: 4, vsid: 4, asid: 1 });
    smmu.clearGuestSte(4);
    smmu.attachPasidTable(seedPasidTable(0x8000n));
    tables.map(VA, 0x7000);
    const copy = quiesceAndCopy(smmu, memory);
    const imported = Smmu.importState(copy, { vmid: 1 }, smmu.exportState());
    imported.resume();
    assert.deepEqual(imported.pasidTable, smmu.pasidTable);
    assert.equal(imported.translate(4, undefined, VA + 4, false).address, 0x7004);
  });
});

describe("refused states (issue 6: unknown version, truncated, inconsistent → nothing imported)", () => {
  const { smmu, memory } = runningGuest();
  for (let i = 0; i < 4; i++) smmu.translate(3, undefined, 0x9000_0000 + i * 0x1000, false);
  smmu.translate(2, undefined, VA + 0x30_0000, false);
  const ram = quiesceAndCopy(smmu, memory);
  ram.takeDirtyPages();
  const good = smmu.exportState();
  const decoded = () => decodeSmmuState(good);

  function importing(bytes: Uint8Array) {
    const e = refusal(() => Smmu.importState(ram, { vmid: 2 }, bytes));
    assert.deepEqual(ram.peekDirtyPages(), [], "a refused import writes nothing");
    return e;
  }

  it("another format version, before anything else is read", () => {
    const v2 = good.slice();
    new DataView(v2.buffer).setUint32(0, 2, true);
    const e = importing(v2);
    assert.deepEqual(
      [e.code, e.reason, e.field],
      ["INVALID_ARGUMENT", "STATE_VERSION_UNSUPPORTED", "format_version"],
    );
  });

  it("every truncation is STATE_TRUNCATED naming the field it cut; trailing bytes are refused", () => {
    for (let length = 0; length < good.length; length++) {
      const e = refusal(() => decodeSmmuState(good.subarray(0, length)));
      assert.equal(e.reason, "STATE_TRUNCATED", `length ${length}: ${e.message}`);
    }
    assert.equal(refusal(() => decodeSmmuState(good.subarray(0, 3))).field, "format_version");
    assert.equal(refusal(() => decodeSmmuState(good.subarray(0, good.length - 1))).field, "page_requests");
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    assert.equal(importing(longer).reason, "STATE_TRAILING_BYTES");
  });

  it("garbage after a valid header is refused with a STATE_* reason, never accepted or crashing", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.nat(good.length), (noise, at) => {
        const bytes = good.slice();
        bytes.set(noise.subarray(0, Math.max(0, bytes.length - Math.max(8, at))), Math.max(8, at));
        if (bytes.every((b, i) => b === good[i])) return;
        try {
          Smmu.importState(ram, { vmid: 2 }, bytes);
        } catch (error) {
          assert.ok(error instanceof SmmuError, String(error));
          assert.equal(error.code, "INVALID_ARGUMENT");
          assert.match(error.reason, /^STATE_|GUEST_MEMORY_SIZE_MISMATCH/);
          return;
        }
        // A change that is still a valid state (e.g. another valid address) may be accepted.
      }),
      { numRuns: 300 },
    );
    const e = importing(Uint8Array.from({ length: 400 }, (_, i) => (i * 151) & 0xff));
    assert.equal(e.reason, "STATE_VERSION_UNSUPPORTED");
  });

  it("each inconsistent entry is named (field) and nothing is imported", () => {
    const cases: [string, (s: SmmuState) => void, string, string][] = [
      ["magic", () => undefined, "STATE_MALFORMED", "magic"],
      [
        "overlapping mappings",
        (s) => (s.mappings[1]!.ipa = 0xff_f000),
        "STATE_INCONSISTENT",
        "mappings[1].ipa",
      ],
      [
        "unbacked mapping",
        (s) => (s.mappings[1]!.hostAddress = 2 ** 32),
        "STATE_INCONSISTENT",
        "mappings[1].hostAddress",
      ],
      ["no permission", (s) => (s.mappings[0]!.perm = 0), "STATE_INCONSISTENT", "mappings[0].perm"],
      ["devices out of order", (s) => s.devices.reverse(), "STATE_INCONSISTENT", "devices[1].stream_id"],
      [
        "vSID taken",
        (s) => (s.devices[2]!.virtualStreamId = 0x11),
        "STATE_INCONSISTENT",
        "devices[2].virtualStreamId",
      ],
      [
        "vSID beyond SIDSIZE",
        (s) => (s.devices[2]!.virtualStreamId = 1 << 16),
        "STATE_INCONSISTENT",
        "devices[2].virtualStreamId",
      ],
      [
        "guest STE outside the nesting mask",
        (s) => (s.devices[0]!.guestSte![0] |= 1n << 56n),
        "STATE_INCONSISTENT",
        "devices[0].ste[0]",
      ],
      [
        "seed table beside a guest STE",
        (s) => (s.pasidTable = { kind: "bypass" }),
        "STATE_INCONSISTENT",
        "devices[0].flags",
      ],
      ["misaligned doorbell", (s) => (s.msi!.gpa += 8), "STATE_INCONSISTENT", "msi.size"],
      [
        "doorbell beyond the granule",
        (s) => (s.msi = { giova: 0, gpa: 0, size: 0x2000 }),
        "STATE_INCONSISTENT",
        "msi.size",
      ],
      [
        "event out of order",
        (s) => ([s.events[0], s.events[1]] = [s.events[1]!, s.events[0]!]),
        "STATE_INCONSISTENT",
        "events[1].sequence",
      ],
      [
        "event from the future",
        (s) => (s.events[0]!.sequence = s.eventSequence),
        "STATE_INCONSISTENT",
        "events[0].sequence",
      ],
      [
        "lost marker not last",
        (s) => s.events.push({ ...s.events[0]! }),
        "STATE_INCONSISTENT",
        "events[3].kind",
      ],
      ["more events than the depth", (s) => (s.eventQueueDepth = 1), "STATE_INCONSISTENT", "events"],
      [
        "unknown event",
        (s) => ((s.events[0] as { event: { id: number } }).event.id = 0x7f),
        "STATE_INCONSISTENT",
        "events[0].id",
      ],
      [
        "dropped above reported",
        (s) => (s.eventsDropped = s.eventsReported + 1),
        "STATE_INCONSISTENT",
        "counters.events_dropped",
      ],
      [
        "page request of no device",
        (s) => (s.pageRequests[0]!.streamId = 7),
        "STATE_INCONSISTENT",
        "page_requests[0].stream_id",
      ],
      [
        "page request with another vSID",
        (s) => (s.pageRequests[0]!.virtualStreamId = 0x11),
        "STATE_INCONSISTENT",
        "page_requests[0].virtual_stream_id",
      ],
      [
        "page request cookie 0",
        (s) => (s.pageRequests[0]!.cookie = 0),
        "STATE_INCONSISTENT",
        "page_requests[0].cookie",
      ],
      [
        "page request perm",
        (s) => (s.pageRequests[0]!.perm = 3),
        "STATE_INCONSISTENT",
        "page_requests[0].perm",
      ],
      [
        "page request left beyond the timeout",
        (s) => (s.pageRequests[0]!.remainingMs = 1001),
        "STATE_INCONSISTENT",
        "page_requests[0].remaining_ms",
      ],
      [
        "no page-request capacity",
        (s) => (s.pageRequestCapacity = 0),
        "STATE_INCONSISTENT",
        "page_request_capacity",
      ],
      [
        "granule not advertised",
        (s) => (s.features.granule4K = false),
        "STATE_INCONSISTENT",
        "stage2_granule_bits",
      ],
      [
        "OAS 52",
        (s) => (s.features.outputAddressBits = 52),
        "STATE_INCONSISTENT",
        "features.outputAddressBits",
      ],
      [
        "seed table pointer",
        (s) => (
          s.devices.forEach((d) => (d.guestSte = undefined)),
          (s.pasidTable = {
            kind: "translate",
            contextPtr: 0x8004,
            s1fmt: 0,
            s1cdmax: 0,
            s1dss: 0,
            s1stalld: false,
            ats: false,
          })
        ),
        "STATE_INCONSISTENT",
        "pasid_table.context_ptr",
      ],
    ];
    for (const [what, change, reason, field] of cases) {
      const s = decoded();
      change(s);
      const bytes = encodeSmmuState(s);
      if (what === "magic") bytes[4] = bytes[4]! ^ 1;
      const e = importing(bytes);
      assert.deepEqual(
        [e.code, e.reason, e.field],
        ["INVALID_ARGUMENT", reason, field],
        `${what}: ${e.message}`,
      );
    }
  });

  it("a reserved byte or unknown flag set is STATE_MALFORMED; another RAM size is GUEST_MEMORY_SIZE_MISMATCH", () => {
    const reserved = good.slice();
    reserved[14] = 1; // header reserved u16 after feature_flags
    assert.deepEqual(
      [importing(reserved).reason, importing(reserved).field],
      ["STATE_MALFORMED", "reserved"],
    );
    const flags = good.slice();
    flags[13] = flags[13]! | 0x80; // feature_flags bit 15
    assert.equal(importing(flags).field, "feature_flags");
    const e = refusal(() => Smmu.importState(new SparseGuestMemory(2 ** 31), { vmid: 2 }, good));
    assert.deepEqual([e.reason, e.field], ["GUEST_MEMORY_SIZE_MISMATCH", "guest_memory_bytes"]);
  });
});
