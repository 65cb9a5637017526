import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  EventId,
  EventQueue,
  FaultFlags,
  FaultReason,
  encodeEventRecord,
  eventRecordWords,
  unrecoverableFaultFromEvent,
  type SmmuEvent,
} from "../src/index.js";

const ev = (id: number, extra: Partial<SmmuEvent> = {}): SmmuEvent => ({
  id: id as SmmuEvent["id"],
  streamId: 0x99,
  ...extra,
});

describe("event queue (digest §2.5, iommufd vEVENTQ)", () => {
  it("three events into depth 2: two events then a LOST_EVENTS marker; the next event reads normally", () => {
    const q = new EventQueue(2);
    q.report(ev(0x10), undefined, true);
    q.report(ev(0x11), undefined, true);
    assert.equal(q.report(ev(0x12), undefined, true), undefined);
    const read = q.read();
    assert.deepEqual(
      read.map((e) => [e.sequence, e.lost]),
      [
        [0, false],
        [1, false],
        [2, true],
      ],
    );
    q.report(ev(0x13), undefined, true);
    const next = q.read();
    assert.equal(next.length, 1);
    assert.equal(next[0]!.lost, false);
    assert.equal(next[0]!.sequence, 3);
  });

  it("only one marker, at the tail, carrying the latest dropped sequence", () => {
    const q = new EventQueue(1);
    q.report(ev(0x10), undefined, true);
    q.report(ev(0x10), undefined, true);
    q.report(ev(0x10), undefined, true);
    const read = q.read();
    assert.deepEqual(
      read.map((e) => [e.sequence, e.lost]),
      [
        [0, false],
        [2, true],
      ],
    );
    assert.equal(q.dropped, 2);
  });

  it("a marker still at the tail is replaced by a new event once there is room: the reader sees a gap", () => {
    const q = new EventQueue(2);
    for (let i = 0; i < 3; i++) q.report(ev(0x10), undefined, true);
    assert.equal(q.read(1)[0]!.sequence, 0);
    q.report(ev(0x11), undefined, true);
    assert.deepEqual(
      q.read().map((e) => [e.sequence, e.lost]),
      [
        [1, false],
        [3, false],
      ],
    );
  });

  it("sequence numbers wrap from INT_MAX to 0", () => {
    const q = new EventQueue(4, 0x7fff_fffe);
    for (let i = 0; i < 3; i++) q.report(ev(0x10), undefined, true);
    assert.deepEqual(
      q.read().map((e) => e.sequence),
      [0x7fff_fffe, 0x7fff_ffff, 0],
    );
  });
});

describe("event record encoding (digest §3.4)", () => {
  it("places ID, SSV/SSID, StreamID, RnW, S2, CLASS, TT_READ, InputAddr and IPA at their bits", () => {
    const rec = encodeEventRecord({
      id: EventId.F_PERMISSION,
      streamId: 0x1234,
      substreamId: 5,
      read: true,
      stage2: true,
      eventClass: 1,
      ttRead: true,
      inputAddress: 0xffff_8000_0000_1000n,
      ipa: 0x4000_1234,
    });
    const [dw0, dw1, dw2, dw3] = eventRecordWords(rec);
    assert.equal(dw0, 0x13n | (1n << 11n) | (5n << 12n) | (0x1234n << 32n));
    assert.equal(dw1, (1n << 35n) | (1n << 39n) | (1n << 40n) | (1n << 44n));
    assert.equal(dw2, 0xffff_8000_0000_1000n);
    assert.equal(dw3, 0x4000_1000n);
  });
});

describe("seed fault report mapping (digest §1.4, later revision)", () => {
  const table: [number, number, number][] = [
    [0x10, FaultReason.PTE_FETCH, FaultFlags.ADDR_VALID],
    [0x11, FaultReason.OOR_ADDRESS, FaultFlags.ADDR_VALID],
    [0x12, FaultReason.ACCESS, FaultFlags.ADDR_VALID],
    [0x13, FaultReason.PERMISSION, FaultFlags.ADDR_VALID],
    [0x08, FaultReason.PASID_INVALID, 0],
    [0x09, FaultReason.PASID_FETCH, FaultFlags.FETCH_ADDR_VALID],
    [0x0a, FaultReason.BAD_PASID_ENTRY, 0],
    [0x0b, FaultReason.WALK_EABT, FaultFlags.ADDR_VALID | FaultFlags.FETCH_ADDR_VALID],
  ];
  for (const [id, reason, flags] of table) {
    it(`event 0x${id.toString(16)} → reason ${reason}, flags ${flags}`, () => {
      const f = unrecoverableFaultFromEvent(ev(id, { read: false }));
      assert.equal(f?.reason, reason);
      assert.equal(f?.flags, flags);
    });
  }
  it("PASID_VALID follows SSV; perm is READ 1 / WRITE 2 (v8 layout); other events are not reported", () => {
    const f = unrecoverableFaultFromEvent(ev(0x10, { substreamId: 3, read: true, inputAddress: 0x5000n }));
    assert.equal(f?.flags, FaultFlags.ADDR_VALID | FaultFlags.PASID_VALID);
    assert.deepEqual([f?.pasid, f?.perm, f?.addr], [3, 1, 0x5000n]);
    for (const id of [0x01, 0x02, 0x04, 0x06, 0x20])
      assert.equal(unrecoverableFaultFromEvent(ev(id)), undefined);
  });
});
