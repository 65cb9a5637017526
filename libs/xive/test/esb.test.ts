import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ESB_FORWARD, PQ, esbEoi, esbTrigger } from "../src/esb.js";
import { TriggerOutcome } from "../src/xive-router.js";
import { makeDevice, routedDevice } from "./fixtures.js";

const IRQ = 0x1300;

describe("ESB PQ state machine (xive.md §3)", () => {
  it("§3 trigger table: 00→10 forwards, 01→01, 10→11, 11→11 do not", () => {
    assert.equal(esbTrigger(PQ.RESET), PQ.PENDING | ESB_FORWARD);
    assert.equal(esbTrigger(PQ.OFF), PQ.OFF);
    assert.equal(esbTrigger(PQ.PENDING), PQ.QUEUED);
    assert.equal(esbTrigger(PQ.QUEUED), PQ.QUEUED);
  });

  it("§3 EOI table: 00→00, 01→01, 10→00, 11→10 with re-notify", () => {
    assert.equal(esbEoi(PQ.RESET), PQ.RESET);
    assert.equal(esbEoi(PQ.OFF), PQ.OFF);
    assert.equal(esbEoi(PQ.PENDING), PQ.RESET);
    assert.equal(esbEoi(PQ.QUEUED), PQ.PENDING | ESB_FORWARD);
  });

  it("§1.2 SOURCE: a new source is masked with PQ=01 and a trigger is not forwarded", () => {
    const { device } = makeDevice();
    device.initSource(IRQ);
    assert.equal(device.source(IRQ)!.pq, PQ.OFF);
    assert.equal(device.source(IRQ)!.masked, true);
    assert.equal(device.trigger(IRQ), TriggerOutcome.COALESCED);
  });

  it("§3 management loads: GET 0x800-0xBFF has no side effect; SET_PQ_xx returns the old PQ", () => {
    const { device } = makeDevice();
    device.initSource(IRQ);
    for (const offset of [0x800, 0x9ff, 0xbff])
      assert.equal(device.esbLoad(IRQ, true, offset), BigInt(PQ.OFF));
    assert.equal(device.esbLoad(IRQ, true, 0xc00), BigInt(PQ.OFF));
    assert.equal(device.source(IRQ)!.pq, PQ.RESET);
    assert.equal(device.esbLoad(IRQ, true, 0xeff), BigInt(PQ.RESET));
    assert.equal(device.source(IRQ)!.pq, PQ.PENDING);
    assert.equal(device.esbLoad(IRQ, true, 0xf00), BigInt(PQ.PENDING));
    assert.equal(device.esbLoad(IRQ, true, 0xd80), BigInt(PQ.QUEUED));
    assert.equal(device.source(IRQ)!.pq, PQ.OFF);
    // Offsets alias every 4 KiB inside the 64 KiB page.
    assert.equal(device.esbLoad(IRQ, true, 0x1c00), BigInt(PQ.OFF));
    assert.equal(device.source(IRQ)!.pq, PQ.RESET);
  });

  it("§3 EOI loads 0x000-0x7FF (0x400 too) return 1 only when Q re-notifies", () => {
    const { device } = makeDevice();
    device.initSource(IRQ);
    device.esbLoad(IRQ, true, 0xf00); // PQ=11
    assert.equal(device.esbLoad(IRQ, true, 0x400), 1n);
    assert.equal(device.source(IRQ)!.pq, PQ.PENDING);
    assert.equal(device.esbLoad(IRQ, true, 0x7ff), 0n);
    assert.equal(device.source(IRQ)!.pq, PQ.RESET);
  });

  it("§3 a load from the trigger page returns -1 and changes nothing", () => {
    const { device } = makeDevice();
    device.initSource(IRQ);
    assert.equal(device.esbLoad(IRQ, false, 0xc00), 0xffff_ffff_ffff_ffffn);
    assert.equal(device.source(IRQ)!.pq, PQ.OFF);
  });

  it("§3 stores: trigger page and management 0x000-0x3FF trigger; 0xC00-0xFFF set PQ", () => {
    const { device } = routedDevice(IRQ);
    device.esbStore(IRQ, false, 0x1234, 0n);
    assert.equal(device.source(IRQ)!.pq, PQ.PENDING);
    device.esbStore(IRQ, true, 0x3ff, 0n);
    assert.equal(device.source(IRQ)!.pq, PQ.QUEUED);
    device.esbStore(IRQ, true, 0xd00, 0n);
    assert.equal(device.source(IRQ)!.pq, PQ.OFF);
    assert.equal(device.router.counters.delivered, 1);
  });

  it("§3 store-EOI 0x400-0x7FF is ignored without STORE_EOI and works with it", () => {
    const off = routedDevice(IRQ);
    off.device.trigger(IRQ);
    off.device.esbStore(IRQ, true, 0x400, 0n);
    assert.equal(off.device.source(IRQ)!.pq, PQ.PENDING);
    const on = routedDevice(IRQ, IRQ, { storeEoi: true });
    on.device.trigger(IRQ);
    on.device.esbStore(IRQ, true, 0x400, 0n);
    assert.equal(on.device.source(IRQ)!.pq, PQ.RESET);
  });

  it("§3 INJECT 0x800-0xBFF forwards without a PQ check", () => {
    const { device } = routedDevice(IRQ);
    device.esbLoad(IRQ, true, 0xd00); // PQ=01: a trigger would not forward
    device.esbStore(IRQ, true, 0x800, 0n);
    assert.equal(device.router.counters.delivered, 1);
    assert.equal(device.source(IRQ)!.pq, PQ.OFF);
  });

  it("§3 LSI: assert forwards only from 00 (to 10), Q never set; EOI re-triggers while asserted", () => {
    const { device } = routedDevice(IRQ);
    device.initSource(0x1200, { lsi: true });
    device.setSourceConfig(0x1200, (0x1200n << 33n) | 6n);
    device.esbLoad(0x1200, true, 0xc00);
    assert.equal(device.setIrq(0x1200, true), TriggerOutcome.DELIVERED);
    assert.equal(device.source(0x1200)!.pq, PQ.PENDING);
    assert.equal(device.setIrq(0x1200, true), TriggerOutcome.COALESCED);
    assert.equal(device.source(0x1200)!.pq, PQ.PENDING, "Q is never set for an LSI");
    assert.equal(device.esbLoad(0x1200, true, 0x000), 1n, "still asserted: EOI re-triggers");
    assert.equal(device.source(0x1200)!.pq, PQ.PENDING);
    device.setIrq(0x1200, false);
    assert.equal(device.source(0x1200)!.asserted, false);
    assert.equal(device.esbLoad(0x1200, true, 0x000), 0n);
    assert.equal(device.source(0x1200)!.pq, PQ.RESET);
    assert.equal(device.router.counters.delivered, 2);
  });

  it("§1.2 SOURCE: an LSI created asserted, re-init keeps LSI and ASSERTED (KVM never clears them)", () => {
    const { device } = makeDevice();
    device.setSource(0x1200, 3n);
    device.setSource(0x1200, 0n);
    assert.deepEqual([device.source(0x1200)!.lsi, device.source(0x1200)!.asserted], [true, true]);
  });

  it("§1.5/A4 an ESB access to an invalid source faults; accesses are 8 bytes", () => {
    const { device } = makeDevice();
    assert.throws(() => device.esbLoad(5, true, 0x800), { reason: "ESB_PAGE_FAULT" });
    device.initSource(5);
    assert.throws(() => device.esbLoad(5, true, 0x800, 4), { reason: "ESB_ACCESS_SIZE" });
  });

  it("property (§3): through the ESB pages, PQ and forwards match the reference tables", () => {
    const op = fc.oneof(
      fc.constant({ kind: "trigger" as const }),
      fc.record({ kind: fc.constant("load" as const), offset: fc.integer({ min: 0, max: 0xfff }) }),
      fc.record({
        kind: fc.constant("store" as const),
        offset: fc.constantFrom(0x000, 0x3ff, 0xc00, 0xd00, 0xe00, 0xf00),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { device } = routedDevice(IRQ);
        let pq: number = PQ.RESET;
        let forwards = 0;
        for (const o of ops) {
          if (o.kind === "trigger" || (o.kind === "store" && o.offset < 0x400)) {
            const r = esbTrigger(pq);
            if (r & ESB_FORWARD) forwards++;
            pq = r & 3;
            if (o.kind === "trigger") device.trigger(IRQ);
            else device.esbStore(IRQ, true, o.offset, 0n);
          } else if (o.kind === "store") {
            pq = (o.offset >> 8) & 3;
            device.esbStore(IRQ, true, o.offset, 0n);
          } else {
            const got = device.esbLoad(IRQ, true, o.offset);
            if (o.offset < 0x800) {
              const r = esbEoi(pq);
              assert.equal(got, r & ESB_FORWARD ? 1n : 0n);
              if (r & ESB_FORWARD) forwards++;
              pq = r & 3;
            } else if (o.offset < 0xc00) {
              assert.equal(got, BigInt(pq));
            } else {
              assert.equal(got, BigInt(pq));
              pq = (o.offset >> 8) & 3;
            }
          }
          assert.equal(device.source(IRQ)!.pq, pq);
        }
        assert.equal(device.router.counters.delivered, forwards);
      }),
    );
  });
});
