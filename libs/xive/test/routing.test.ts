import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Errno } from "@vplane/model-kit";
import { EventQueueReader } from "../src/event-queue-reader.js";
import { decodeKvmSourceConfig, encodeKvmSourceConfig } from "../src/kvm-attributes.js";
import { TriggerOutcome } from "../src/xive-router.js";
import { QADDR, eq, makeDevice, routedDevice, sourceConfig, thrown } from "./fixtures.js";

describe("EAS routing through SOURCE_CONFIG (xive.md §1.2, §1.3)", () => {
  it("§1.3 SOURCE_CONFIG layout: prio 2:0, server 31:3, masked bit 32, eisn 63:33", () => {
    const value = (0x1234n << 33n) | (1n << 32n) | (5n << 3n) | 6n;
    assert.deepEqual(decodeKvmSourceConfig(value), { priority: 6, server: 5, masked: true, eisn: 0x1234 });
    assert.equal(encodeKvmSourceConfig({ priority: 6, server: 5, masked: true, eisn: 0x1234 }), value);
    assert.equal(decodeKvmSourceConfig(0xffff_fffe_0000_0000n).eisn, 0x7fff_ffff);
  });

  it("§1.2 ENOENT without a source block, EINVAL for an invalid source, EINVAL for priority 7", () => {
    const { device } = makeDevice();
    device.connectVcpu(0);
    device.setQueueConfig(0, 6, eq(BigInt(QADDR)));
    assert.equal(thrown(() => device.setSourceConfig(0x1300, sourceConfig(0, 6, 1))).errno, Errno.ENOENT);
    device.initSource(0x1301); // creates the block 0x1000-0x13ff
    assert.equal(thrown(() => device.setSourceConfig(0x1300, sourceConfig(0, 6, 1))).errno, Errno.EINVAL);
    device.initSource(0x1300);
    const e = thrown(() => device.setSourceConfig(0x1300, sourceConfig(0, 7, 1)));
    assert.deepEqual([e.errno, e.reason], [Errno.EINVAL, "PRIORITY_RESERVED"]);
    assert.equal(device.source(0x1300)!.masked, true, "no state change");
  });

  it("§1.3 target selection: unknown server EINVAL; no queue anywhere EBUSY; nothing changes", () => {
    const { device } = makeDevice();
    device.connectVcpu(0);
    device.initSource(0x1300);
    assert.equal(thrown(() => device.setSourceConfig(0x1300, sourceConfig(9, 6, 1))).errno, Errno.EINVAL);
    assert.equal(thrown(() => device.setSourceConfig(0x1300, sourceConfig(0, 6, 1))).errno, Errno.EBUSY);
    assert.equal(device.source(0x1300)!.masked, true);
  });

  it("§1.3 a full queue (entries − XIVE_Q_GAP sources) makes KVM pick another vCPU, then EBUSY", () => {
    const { device } = makeDevice();
    device.connectVcpu(0);
    device.connectVcpu(1);
    device.setQueueConfig(0, 6, eq(BigInt(QADDR)));
    device.setQueueConfig(1, 6, eq(BigInt(QADDR + 0x10000)));
    const perQueue = 16384 - 2;
    for (let i = 0; i < perQueue; i++) {
      device.initSource(i);
      assert.equal(device.setSourceConfig(i, sourceConfig(0, 6, i)), 0);
    }
    device.initSource(perQueue);
    assert.equal(device.setSourceConfig(perQueue, sourceConfig(0, 6, 7)), 1, "effective server differs");
    assert.equal(device.source(perQueue)!.server, 1);
    for (let i = perQueue + 1; i < 2 * perQueue; i++) {
      device.initSource(i);
      device.setSourceConfig(i, sourceConfig(1, 6, i));
    }
    device.initSource(2 * perQueue);
    assert.equal(
      thrown(() => device.setSourceConfig(2 * perQueue, sourceConfig(0, 6, 1))).errno,
      Errno.EBUSY,
    );
  });

  it("§1.2 unchanged (server, priority, eisn) is a no-op, even with the masked bit set (KVM compares only those)", () => {
    const { device } = routedDevice(0x1300, 0x55);
    device.setSourceConfig(0x1300, sourceConfig(0, 6, 0x55, true));
    assert.equal(device.source(0x1300)!.masked, false);
    device.setSourceConfig(0x1300, sourceConfig(0, 5, 0x55, true));
    const s = device.source(0x1300)!;
    assert.deepEqual([s.masked, s.server, s.priority, s.eisn], [true, 0, 0, 0], "masked: server 0, eisn 0");
  });

  it("§4.2 a masked EAS drops the event silently and P stays set", () => {
    const { device } = routedDevice(0x1300);
    device.setSourceConfig(0x1300, sourceConfig(0, 5, 1, true));
    assert.equal(device.trigger(0x1300), TriggerOutcome.MASKED);
    assert.equal(device.source(0x1300)!.pq, 0b10);
  });
});

describe("END / event queue (xive.md §1.4, §4.1)", () => {
  it("§1.4 EQ_CONFIG checks in order: ENOENT, EINVAL prio 7, flags, qshift 16 only, alignment, page, guest RAM", () => {
    const { device } = makeDevice();
    assert.equal(thrown(() => device.setQueueConfig(0, 6, eq(0n))).errno, Errno.ENOENT);
    device.connectVcpu(0);
    const cases: [Partial<Parameters<typeof eq>[1]> & { qaddr?: bigint }, string][] = [
      [{ flags: 0 }, "EQ_FLAGS_INVALID"],
      [{ flags: 3 }, "EQ_FLAGS_INVALID"],
      [{ qshift: 12 }, "EQ_SIZE_INVALID"],
      [{ qshift: 21 }, "EQ_SIZE_INVALID"],
      [{ qshift: 24 }, "EQ_SIZE_INVALID"],
      [{ qaddr: BigInt(QADDR + 0x1000) }, "EQ_MISALIGNED"],
      [{ qaddr: 1n << 40n }, "EQ_NOT_IN_GUEST_RAM"],
    ];
    for (const [fields, reason] of cases) {
      const e = thrown(() => device.setQueueConfig(0, 6, eq(fields.qaddr ?? BigInt(QADDR), fields)));
      assert.deepEqual([e.errno, e.reason], [Errno.EINVAL, reason], reason);
      assert.equal(device.getQueueConfig(0, 6), undefined, "no state change");
    }
    assert.equal(thrown(() => device.setQueueConfig(0, 7, eq(BigInt(QADDR)))).reason, "PRIORITY_RESERVED");
    const small = makeDevice({ hostPageShift: 12 }).device;
    small.connectVcpu(0);
    assert.equal(thrown(() => small.setQueueConfig(0, 6, eq(BigInt(QADDR)))).reason, "EQ_LARGER_THAN_PAGE");
  });

  it("§1.4 get: no page → undefined (buffer untouched); else flags, qshift, qaddr, live toggle/index", () => {
    const { device } = routedDevice(0x1300);
    assert.equal(device.getQueueConfig(0, 5), undefined);
    assert.deepEqual(device.getQueueConfig(0, 6), {
      flags: 1,
      qshift: 16,
      qaddr: BigInt(QADDR),
      qtoggle: 1,
      qindex: 0,
    });
    device.trigger(0x1300);
    assert.equal(device.getQueueConfig(0, 6)!.qindex, 1);
  });

  it("§1.4 step 6: qtoggle/qindex restored only when not 1/0; qshift 0 resets the queue", () => {
    const { device } = makeDevice();
    device.connectVcpu(0);
    device.setQueueConfig(0, 6, eq(BigInt(QADDR), { qtoggle: 0, qindex: 77 }));
    assert.deepEqual([device.getQueueConfig(0, 6)!.qtoggle, device.getQueueConfig(0, 6)!.qindex], [0, 77]);
    device.setQueueConfig(0, 6, eq(BigInt(QADDR)));
    assert.deepEqual([device.getQueueConfig(0, 6)!.qtoggle, device.getQueueConfig(0, 6)!.qindex], [1, 0]);
    device.setQueueConfig(0, 6, eq(0n, { qshift: 0, flags: 99 }));
    assert.equal(device.getQueueConfig(0, 6), undefined);
  });

  it("§4.1 an entry is gen<<31 | eisn at qaddr + 4*qindex; the generation flips on wrap", () => {
    const { device, memory } = routedDevice(0x1300, 0x7abc);
    device.setQueueConfig(0, 6, eq(BigInt(QADDR), { qtoggle: 1, qindex: 16383 }));
    device.trigger(0x1300);
    assert.equal(memory.readU32BE(QADDR + 16383 * 4), 0x8000_7abc);
    assert.deepEqual([device.getQueueConfig(0, 6)!.qtoggle, device.getQueueConfig(0, 6)!.qindex], [0, 0]);
    device.esbLoad(0x1300, true, 0x000);
    device.trigger(0x1300);
    assert.equal(memory.readU32BE(QADDR), 0x0000_7abc, "generation 0 after the wrap");
  });

  it("§4.2 step 3: an invalid END drops the event (no write)", () => {
    const { device, memory } = routedDevice(0x1300);
    device.setQueueConfig(0, 6, eq(0n, { qshift: 0 }));
    assert.equal(device.trigger(0x1300), TriggerOutcome.INVALID_ROUTE);
    assert.equal(memory.readU32BE(QADDR), 0);
  });

  it("property (§4.1): every forwarded trigger lands once, in order, with the right generation, unless overflow, which the reader sees", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 7 }), fc.constant(-1)), { maxLength: 400 }),
        fc.integer({ min: 16000, max: 16383 }),
        (ops, start) => {
          const { device, memory } = makeDevice();
          device.connectVcpu(0);
          // The producer starts at `start` with generation 1, so the run crosses the wrap.
          device.setQueueConfig(0, 6, eq(BigInt(QADDR), { qtoggle: 1, qindex: start }));
          for (let s = 0; s < 8; s++) {
            device.initSource(0x1300 + s);
            device.setSourceConfig(0x1300 + s, sourceConfig(0, 6, 0x100 + s));
            device.esbLoad(0x1300 + s, true, 0xc00);
          }
          // The guest already consumed entries 0..start-1 of this lap (generation 1).
          for (let k = 0; k < start; k++) memory.writeU32BE(QADDR + 4 * k, 0x8000_0000);
          const reader = new EventQueueReader(memory, QADDR, 16, { index: start, toggle: 0 });
          const expected: { data: number; generation: number }[] = [];
          let written = start;
          const check = () => {
            for (const entry of reader.drain()) assert.deepEqual(entry, expected.shift());
          };
          for (const o of ops) {
            if (o === -1) {
              check();
              continue;
            }
            const irq = 0x1300 + o;
            if (device.trigger(irq) === TriggerOutcome.DELIVERED) {
              expected.push({ data: 0x100 + o, generation: written < 16384 ? 1 : 0 });
              written++;
            }
            device.esbLoad(irq, true, 0x000); // EOI so the next trigger forwards
          }
          check();
          assert.deepEqual(expected, [], "every forwarded trigger was read exactly once");
          assert.equal(reader.checkOverflow(device.ends!.read(6)), 0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("property (§4.1): a producer that laps the reader overwrites entries, and the reader reports exactly how many", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40000 }), (events) => {
        const { device, memory } = routedDevice(0x1300);
        const reader = new EventQueueReader(memory, QADDR, 16);
        for (let i = 0; i < events; i++) device.esbStore(0x1300, true, 0x800, 0n); // inject
        assert.equal(reader.checkOverflow(device.ends!.read(6)), Math.max(0, events - 16384));
        if (events <= 16384) assert.equal(reader.drain().length, events);
      }),
      { numRuns: 12 },
    );
  });
});
