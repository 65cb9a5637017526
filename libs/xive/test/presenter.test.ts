import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ipbToPipr, priorityToIpb } from "../src/thread-context.js";
import { QADDR, makeDevice, routedDevice } from "./fixtures.js";

const OS = 0x2_0000;
const word0 = (device: ReturnType<typeof makeDevice>["device"]) => device.timaLoad(0, OS + 0x10, 4);

describe("presenter: TIMA OS ring (xive.md §5, §4.2 step 10)", () => {
  it("§4.2 IPB bit is 1<<(7-prio), none above 7; PIPR = clz8(IPB), 0xFF when empty", () => {
    assert.equal(priorityToIpb(0), 0x80);
    assert.equal(priorityToIpb(6), 0x02);
    assert.equal(priorityToIpb(8), 0);
    assert.equal(ipbToPipr(0x02), 6);
    assert.equal(ipbToPipr(0x42), 1);
    assert.equal(ipbToPipr(0), 0xff);
  });

  it("§1.1 connect: OS word0/1 = 0x00000000_FF000000 and CAM = VO | 0x400+server", () => {
    const { device } = makeDevice();
    device.connectVcpu(3);
    assert.equal(device.getVpState(3)[0], 0x0000_0000_ff00_0000n);
    assert.equal(device.context(3)!.osCam, 0x8000_0403);
  });

  it("pnv-xive2 test_hw_irq on the OS ring: SET_PQ_00, trigger → PQ 10, NSR 0x80, ACK = 0x80<<8|prio, EQ word, EOI, CPPR 0xFF", () => {
    const { device, memory, signals } = routedDevice(0x1300, 0x1300);
    assert.equal(device.source(0x1300)!.pq, 0b00);
    device.trigger(0x1300);
    assert.equal(device.source(0x1300)!.pq, 0b10);
    assert.equal(word0(device) >> 16n, 0x80ffn, "NSR 0x80, CPPR 0xFF");
    assert.deepEqual(signals, [{ server: 0, raised: true }]);
    assert.equal(device.timaLoad(0, OS + 0x810, 2), (0x80n << 8n) | 6n);
    assert.deepEqual(signals.at(-1), { server: 0, raised: false });
    assert.equal(memory.readU32BE(QADDR) & 0x7fff_ffff, 0x1300);
    assert.equal(device.esbLoad(0x1300, true, 0x000), 0n);
    assert.equal(device.source(0x1300)!.pq, 0b00);
    device.timaStore(0, OS + 0x11, 1, 0xffn);
    assert.equal(word0(device) >> 24n, 0n, "NSR 0");
    assert.equal(signals.length, 2, "no further line change");
  });

  it("§5 CPPR store: >7 stored as 0xFF; unchanged does nothing; more favoured than PIPR withdraws (line lowered)", () => {
    const { device, signals } = routedDevice();
    device.timaStore(0, OS + 0x11, 1, 0x10n);
    assert.equal(device.context(0)!.regs[0x11], 0xff);
    device.trigger(0x1300);
    assert.equal(signals.length, 1);
    device.timaStore(0, OS + 0x11, 1, 0xffn);
    assert.equal(signals.length, 1, "unchanged CPPR: nothing");
    device.timaStore(0, OS + 0x11, 1, 6n);
    assert.deepEqual(signals.at(-1), { server: 0, raised: false });
    assert.equal(device.context(0)!.regs[0x10], 0, "NSR cleared");
    assert.equal(device.context(0)!.regs[0x12], 0x02, "IPB keeps the pending priority");
    device.timaStore(0, OS + 0x11, 1, 7n);
    assert.deepEqual(signals.at(-1), { server: 0, raised: true }, "less favoured CPPR re-presents it");
  });

  it("§5 ACK with nothing pending returns (0<<8)|CPPR and changes nothing", () => {
    const { device } = routedDevice();
    assert.equal(device.timaLoad(0, OS + 0x810, 2), 0xffn);
    assert.equal(device.context(0)!.regs[0x11], 0xff);
  });

  it("§5 raw access rules: 4/8-byte only, OS view masks (AGE, W2 unreadable), USER ring refused, specials need their size", () => {
    const { device } = routedDevice();
    assert.equal(device.timaLoad(0, OS + 0x10, 2), 0xffffn, "2-byte raw read refused");
    device.setVpState(0, [0x00ff_0000_ff00_77ffn, 0n]);
    assert.equal(
      device.timaLoad(0, OS + 0x10, 8),
      0x00ff_0000_ff00_00ffn,
      "AGE (0x77) reads 0 through the mask",
    );
    assert.equal(device.timaLoad(0, OS + 0x18, 4), 0xffff_ffffn, "W2 not readable from the OS page");
    assert.equal(device.timaLoad(0, OS + 0x00, 4), 0xffff_ffffn, "USER ring refused");
    assert.equal(device.timaLoad(0, OS + 0x810, 4), 0xffff_ffffn, "ACK is a 2-byte load only");
    device.timaStore(0, OS + 0x10, 4, 0x11_05_22_33n);
    assert.equal(device.context(0)!.regs[0x11], 0x05, "CPPR writable raw");
    assert.equal(device.context(0)!.regs[0x10], 0, "NSR read-only");
    assert.equal(device.context(0)!.regs[0x12], 0, "IPB read-only");
    assert.throws(() => device.timaLoad(0, 0x3_0010, 4), { reason: "TIMA_PAGE_FAULT" });
    assert.throws(() => device.timaLoad(0, 0x1_0010, 4), { reason: "TIMA_PAGE_FAULT" });
    assert.throws(() => device.timaLoad(0, OS + 0x10, 3), { reason: "TIMA_ACCESS_SIZE" });
  });

  it("§5 SET_OS_PENDING (store8 0x812) ORs a priority into the IPB and presents it", () => {
    const { device, signals } = routedDevice();
    device.timaStore(0, OS + 0x812, 1, 3n);
    assert.equal(device.context(0)!.regs[0x12], 0x10);
    assert.equal(device.context(0)!.regs[0x17], 3);
    assert.deepEqual(signals, [{ server: 0, raised: true }]);
    assert.equal(device.timaLoad(0, OS + 0x810, 2), 0x8003n);
  });

  it("§4.2 step 10: an event not beating CPPR sets IPB and PIPR but not NSR or the line", () => {
    const { device, signals } = routedDevice();
    device.timaStore(0, OS + 0x11, 1, 5n);
    device.trigger(0x1300);
    assert.deepEqual(
      [device.context(0)!.regs[0x10], device.context(0)!.regs[0x12], device.context(0)!.regs[0x17]],
      [0, 2, 6],
    );
    assert.deepEqual(signals, []);
  });
});
