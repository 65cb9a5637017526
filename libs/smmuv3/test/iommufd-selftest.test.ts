import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Errno,
  EventId,
  HWPT_FAULT_ID_VALID,
  PageResponseCode,
  SmmuError,
  buildCommand,
} from "../src/index.js";
import { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, identityStage2, makeSmmu, writeCd, stage1Device } from "./smmu-fixture.js";

/**
 * Ports of tools/testing/selftests/iommu/iommufd.c scenarios listed in digest §5.1, in the
 * model's terms: VDEVICE_ALLOC = attachDevice, nested HWPT alloc + attach = setGuestSte,
 * HWPT_INVALIDATE = invalidateCommands, vEVENTQ = the event queue, fault queue = page requests.
 */
function errnoOf(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof SmmuError) return e.errno;
    throw e;
  }
}

describe("iommufd selftest ports (digest §5.1)", () => {
  it("vdevice_alloc: attach to a nested HWPT before a vdevice exists → ENOENT; a second vdevice → EEXIST", () => {
    const { smmu } = makeSmmu();
    assert.equal(
      errnoOf(() => smmu.setGuestSte(0x10, guestSte({}))),
      Errno.ENOENT,
    );
    smmu.attachDevice(0x10, 0x99);
    assert.equal(
      errnoOf(() => smmu.attachDevice(0x10, 0x98)),
      Errno.EEXIST,
    );
    smmu.attachDevice(0x11, 0x88);
    assert.equal(
      errnoOf(() => smmu.attachDevice(0x12, 0x88)),
      Errno.EEXIST,
    );
    assert.equal(
      errnoOf(() => smmu.detachDevice(0x13)),
      Errno.ENOENT,
    );
    smmu.detachDevice(0x11);
    smmu.attachDevice(0x12, 0x88);
  });

  it("alloc_hwpt_nested: data errors are EIO, unknown flags EOPNOTSUPP, nothing installed on refusal", () => {
    const { smmu } = makeSmmu();
    smmu.attachDevice(0x10, 0x99);
    smmu.setGuestSte(0x10, guestSte({ config: 4 }));
    assert.equal(
      errnoOf(() => smmu.setGuestSte(0x10, guestSte({ config: 6 }))),
      Errno.EIO,
    );
    assert.equal(
      errnoOf(() => smmu.setGuestSte(0x10, [guestSte({})[0] | (0xfn << 52n), 0n])),
      Errno.EIO,
    );
    assert.equal(
      errnoOf(() => smmu.setGuestSte(0x10, guestSte({}), 1 << 31)),
      Errno.EOPNOTSUPP,
    );
    assert.equal(
      errnoOf(() => smmu.setGuestSte(0x10, guestSte({}), 1)),
      Errno.EOPNOTSUPP,
    );
    assert.equal(smmu.listDevices()[0]!.guestSte?.stage1.kind, "bypass");
  });

  it("invalidation: entry_num 0 probes and succeeds; two entries with the second bad → error, handled 1, first applied", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    const t = stage1Device(smmu, memory, { sid: 0x10, vsid: 0x99, asid: 3 });
    t.map(0x5000_0000, 0x2000);
    smmu.translate(0x10, undefined, 0x5000_0000, false);
    assert.deepEqual(smmu.invalidateCommands([]), { handled: 0 });
    const r = smmu.invalidateCommands([buildCommand.nhAsid(3), buildCommand.cfgiCd(0x77, 0)]);
    assert.equal(r.handled, 1);
    assert.equal(r.error?.errno, Errno.EIO);
    assert.equal(smmu.translate(0x10, undefined, 0x5000_0000, false).hit, false);
  });

  it("vEVENTQ: vdev 0x99's event reads back with virt_id 0x99 and a contiguous sequence", () => {
    const { smmu } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(0x10, 0x99);
    smmu.setGuestSte(0x10, guestSte({ contextPtr: 0x8000 }));
    smmu.translate(0x10, undefined, 0, false);
    smmu.translate(0x10, undefined, 0, false);
    const events = smmu.readEvents();
    assert.deepEqual(
      events.map((e) =>
        e.lost ? ["lost", e.sequence] : [e.event.streamId, e.sequence, e.event.id, e.forwarded],
      ),
      [
        [0x99, 0, EventId.C_BAD_CD, true],
        [0x99, 1, EventId.C_BAD_CD, true],
      ],
    );
  });

  it("vEVENTQ: a stage-2 fault is recorded but not forwarded to the guest (Linux 7.3 arm_smmu_handle_event: vmaster && !event->s2)", () => {
    const { smmu } = makeSmmu();
    smmu.mapStage2(0, 0, 0x10_0000, 3);
    smmu.attachDevice(0x10, 0x99);
    smmu.setGuestSte(0x10, guestSte({ config: 4 }));
    smmu.translate(0x10, undefined, 0x20_0000, false);
    const events = smmu.readEvents();
    assert.deepEqual(
      events.map((e) => (e.lost ? "lost" : [e.event.id, e.event.stage2, e.forwarded])),
      [[EventId.F_TRANSLATION, true, false]],
    );
  });

  it("vEVENTQ overflow: vdev 0x88, three events into depth 2 → LOST_EVENTS; the next event reads normally", () => {
    const { smmu } = makeSmmu({ limits: { eventQueueDepth: 2 } });
    smmu.attachDevice(0x11, 0x88);
    smmu.setGuestSte(0x11, guestSte({ valid: false }));
    for (let i = 0; i < 3; i++) smmu.translate(0x11, undefined, 0, false);
    const first = smmu.readEvents();
    assert.deepEqual(
      first.map((e) => e.lost),
      [false, false, true],
    );
    smmu.translate(0x11, undefined, 0, false);
    const next = smmu.readEvents();
    assert.equal(next.length, 1);
    assert.equal(next[0]!.lost, false);
    assert.equal(!next[0]!.lost && next[0]!.event.streamId, 0x88);
  });

  it("viommu_alloc_nested_iopf: a fault becomes a page request; reading it and writing its cookie back with code 0 lets the DMA retry", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    smmu.attachDevice(0x10, 0x99);
    const t = new GuestPageTables(memory, 12, 48, 0x10_0000);
    writeCd(memory, 0x8000, { asid: 3, t0sz: 16, tg0: 0, ttb0: t.root });
    smmu.setGuestSte(0x10, guestSte({ contextPtr: 0x8000 }), HWPT_FAULT_ID_VALID);
    const first = smmu.dmaWrite(0x10, undefined, 0x5000_0010, new Uint8Array([5]), { now: 100 });
    assert.equal(first.outcome, "page-request");
    const [request] = smmu.listPageRequests();
    assert.ok(request);
    assert.deepEqual(
      [request.virtualStreamId, request.address, request.perm, request.deadline],
      [0x99, 0x5000_0000n, 2, 10_100],
    );
    assert.equal(smmu.readEvents().length, 0);
    // The guest maps the page, then the VMM answers SUCCESS.
    t.map(0x5000_0000, 0x3000);
    assert.equal(
      errnoOf(() => smmu.respondPageRequest(request.cookie, 3)),
      Errno.EINVAL,
    );
    assert.equal(
      smmu.respondPageRequest(request.cookie, PageResponseCode.SUCCESS).code,
      PageResponseCode.SUCCESS,
    );
    assert.equal(
      errnoOf(() => smmu.respondPageRequest(request.cookie, PageResponseCode.SUCCESS)),
      Errno.EINVAL,
    );
    assert.equal(smmu.dmaWrite(0x10, undefined, 0x5000_0010, new Uint8Array([5])).outcome, "completed");
    assert.equal(memory.read(0x3010, 1)[0], 5);
  });
});

describe("page requests (DESIGN: DMA waits for the response or a timeout)", () => {
  function faulting(limits = {}) {
    const { smmu, memory } = makeSmmu({ limits });
    identityStage2(smmu);
    stage1Device(smmu, memory, { sid: 0x10, vsid: 0x99, asid: 3, pageRequests: true });
    return smmu;
  }

  it("expires at the deadline the caller's clock reaches; a late response → EINVAL", () => {
    const smmu = faulting({ pageRequestTimeoutMs: 50 });
    const r = smmu.translate(0x10, undefined, 0x6000, false, { now: 1000 });
    assert.equal(r.outcome, "page-request");
    assert.deepEqual(smmu.expirePageRequests(1049), []);
    const expired = smmu.expirePageRequests(1050);
    assert.equal(expired.length, 1);
    assert.equal(expired[0]!.timedOut, true);
    assert.equal(expired[0]!.code, PageResponseCode.FAILURE);
    assert.equal(
      errnoOf(() => smmu.respondPageRequest(r.pageRequest!.cookie, 0)),
      Errno.EINVAL,
    );
  });

  it("group ids are unique among a device's outstanding requests; the queue bound answers FAILURE at once", () => {
    const smmu = faulting({ pageRequests: 2 });
    const a = smmu.translate(0x10, undefined, 0x6000, false);
    const b = smmu.translate(0x10, undefined, 0x7000, true);
    assert.notEqual(a.pageRequest!.groupId, b.pageRequest!.groupId);
    const c = smmu.translate(0x10, undefined, 0x8000, false);
    assert.equal(c.outcome, "fault");
    assert.equal(c.event?.id, EventId.F_TRANSLATION);
  });

  it("detaching the device answers its requests INVALID (iommufd auto response)", () => {
    const smmu = faulting();
    smmu.translate(0x10, undefined, 0x6000, false);
    const outcomes = smmu.detachDevice(0x10);
    assert.deepEqual(
      outcomes.map((o) => o.code),
      [PageResponseCode.INVALID],
    );
    assert.equal(smmu.listPageRequests().length, 0);
  });

  it("stage-2 faults are never page requests", () => {
    const { smmu, memory } = makeSmmu();
    smmu.mapStage2(0, 0, 0x100_0000, 3);
    const t = stage1Device(smmu, memory, {
      sid: 0x10,
      vsid: 0x99,
      asid: 3,
      pageRequests: true,
    });
    t.map(0x5000_0000, 0x200_0000);
    const r = smmu.translate(0x10, undefined, 0x5000_0000, false);
    assert.equal(r.outcome, "fault");
    assert.equal(r.event?.stage2, true);
  });

  it("CD.S = 1 (stall model) makes stage-1 faults recoverable unless STE.S1STALLD", () => {
    const { smmu, memory } = makeSmmu();
    identityStage2(smmu);
    stage1Device(smmu, memory, { sid: 0x10, vsid: 0x99, asid: 3, cdFields: { stall: true } });
    assert.equal(smmu.translate(0x10, undefined, 0x6000, false).outcome, "page-request");
    smmu.setGuestSte(0x10, guestSte({ contextPtr: 0x8000, s1stalld: true }));
    assert.equal(smmu.translate(0x10, undefined, 0x6000, false).outcome, "fault");
  });
});
