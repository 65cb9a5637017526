import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";
import { sourceConfig } from "./fixtures.js";
import { RecordingGuestMemory } from "./recording-memory.js";

/**
 * Issue 17 point 2, swept: whatever a caller or a guest does through any path that names a
 * guest address or an offset (KVM EQ_CONFIG with any qaddr/qshift/qtoggle/qindex,
 * H_INT_SET_QUEUE_CONFIG, a state import with any 22-bit qindex, ESB and TIMA accesses at any
 * offset, source routing by KVM and by hypercall, resets), every write the XIVE makes to guest
 * RAM lies inside a queue the configuration names: [qaddr, qaddr + 2^qshift) of an END that
 * enqueues.
 */
const RAM = 16 * 1024 * 1024;
const IRQS = [0x1000, 0x1001, 0x1002];
// Mostly values that pass the checks, so that events reach queues; sometimes anything.
const server = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 1 }) },
  fc.integer({ min: 0, max: 4 }),
);
const priority = fc.oneof({ weight: 4, arbitrary: fc.constant(6) }, fc.integer({ min: 0, max: 7 }));
const irq = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...IRQS) }, fc.constant(0x1fff));
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const address = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: RAM / 0x1_0000 }).map((n) => BigInt(n * 0x1_0000)) },
  fc.integer({ min: 0, max: 16 }).map((pages) => BigInt(RAM - pages * 0x1000)),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const qshift = fc.oneof({ weight: 4, arbitrary: fc.constant(16) }, fc.constantFrom(0, 12, 21, 24, 13, 64));
const qindex = fc.oneof(
  fc.integer({ min: 0, max: 16_383 }),
  fc.integer({ min: 16_384, max: 70_000 }),
  fc.integer({ min: 0x3f_0000, max: 0x3f_ffff }),
  u32,
);

const command = fc.oneof(
  fc.record({ t: fc.constant("connect" as const), server }),
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("kvmQueue" as const),
      server,
      priority,
      qshift,
      qaddr: address,
      qtoggle: fc.oneof(fc.integer({ min: 0, max: 1 }), u32),
      qindex,
    }),
  },
  fc.record({
    t: fc.constant("hcallQueue" as const),
    server,
    priority,
    qpage: address,
    qsize: qshift,
    notify: fc.boolean(),
  }),
  fc.record({ t: fc.constant("source" as const), irq, lsi: fc.boolean() }),
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("kvmRoute" as const), irq, server, priority, eisn: u32 }),
  },
  fc.record({ t: fc.constant("hcallRoute" as const), irq, server, priority, eisn: u32 }),
  fc.record({ t: fc.constant("esbLoad" as const), irq, management: fc.boolean(), offset: u32 }),
  fc.record({ t: fc.constant("esbStore" as const), irq, management: fc.boolean(), offset: u32 }),
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("inject" as const),
      irq,
      times: fc.integer({ min: 1, max: 1500 }),
    }),
  },
  fc.record({ t: fc.constant("trigger" as const), irq, level: fc.boolean() }),
  fc.record({
    t: fc.constant("tima" as const),
    server,
    offset: u32,
    size: fc.constantFrom(1, 2, 4, 8, 3),
    value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    store: fc.boolean(),
  }),
  fc.record({ t: fc.constant("reset" as const), hcall: fc.boolean() }),
  fc.record({
    t: fc.constant("migrate" as const),
    qindex: fc.option(fc.integer({ min: 0, max: 0x3f_ffff })),
  }),
);
type Command = typeof command extends fc.Arbitrary<infer C> ? C : never;

function run(controller: InterruptController, memory: RecordingGuestMemory, c: Command): InterruptController {
  const xive = () => controller.xive("test");
  switch (c.t) {
    case "connect":
      controller.connectVcpu(c.server);
      break;
    case "kvmQueue":
      xive().setQueueConfig(c.server, c.priority, {
        flags: 1,
        qshift: c.qshift,
        qaddr: c.qaddr,
        qtoggle: c.qtoggle,
        qindex: c.qindex,
      });
      break;
    case "hcallQueue":
      controller.hcall(c.server, HcallOpcode.H_INT_SET_QUEUE_CONFIG, [
        c.notify ? 1n : 0n,
        BigInt(c.server),
        BigInt(c.priority),
        c.qpage,
        BigInt(c.qsize),
      ]);
      break;
    case "source":
      controller.initSource(c.irq, { lsi: c.lsi });
      break;
    case "kvmRoute":
      xive().setSourceConfig(c.irq, sourceConfig(c.server, c.priority, c.eisn & 0x7fff_ffff));
      break;
    case "hcallRoute":
      controller.hcall(c.server, HcallOpcode.H_INT_SET_SOURCE_CONFIG, [
        2n,
        BigInt(c.irq),
        BigInt(c.server),
        BigInt(c.priority),
        BigInt(c.eisn),
      ]);
      break;
    case "esbLoad":
      xive().esbLoad(c.irq, c.management, c.offset);
      break;
    case "esbStore":
      xive().esbStore(c.irq, c.management, c.offset, 0n);
      break;
    case "inject":
      for (let i = 0; i < c.times; i++) xive().esbStore(c.irq, true, 0x800, 0n);
      break;
    case "trigger":
      controller.setIrq(c.irq, c.level);
      break;
    case "tima":
      if (c.store) xive().timaStore(c.server, c.offset, c.size, c.value);
      else xive().timaLoad(c.server, c.offset, c.size);
      break;
    case "reset":
      if (c.hcall) controller.hcall(0, HcallOpcode.H_INT_RESET, [0n]);
      else xive().reset();
      break;
    case "migrate": {
      controller.quiesce();
      let bytes = controller.exportState();
      const state = decodeControllerState(bytes);
      const queue = state.xive!.queues.find((q) => q.valid);
      if (c.qindex !== null && queue) {
        queue.qindex = c.qindex;
        bytes = encodeControllerState(state);
      }
      const imported = InterruptController.importState(memory, {}, bytes);
      imported.resume();
      return imported;
    }
  }
  return controller;
}

/** The queues the controller's configuration names now: [qaddr, qaddr + 2^qshift) of each enqueuing END. */
function queues(controller: InterruptController): [number, number][] {
  const ends = controller.xive("check").ends;
  const out: [number, number][] = [];
  if (ends === undefined) return out;
  for (let i = 0; i < ends.size; i++) {
    if (ends.isEnqueue(i)) out.push([ends.qaddr[i]!, ends.qaddr[i]! + 2 ** ends.qshiftOf(i)]);
  }
  return out;
}

describe("no XIVE write to guest RAM outside a configured queue (issue 17 point 2 sweep)", () => {
  it("under any sequence of configuration, guest accesses, triggers and migrations", () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 30 }), (commands) => {
        const memory = new RecordingGuestMemory(RAM);
        const writes: [number, number][] = [];
        memory.onWrite = (at, length) => writes.push([at, at + length]);
        let controller = new InterruptController(memory, { mode: "XIVE" });
        controller.selectMode("XIVE");
        controller.connectVcpu(0);
        controller.connectVcpu(1);
        for (const n of IRQS) controller.initSource(n);
        for (const [i, c] of commands.entries()) {
          try {
            controller = run(controller, memory, c);
          } catch (error) {
            if (!(error instanceof XiveError)) throw error;
          }
          if (writes.length === 0) continue;
          const named = queues(controller);
          for (const [start, end] of writes) {
            assert.ok(
              named.some(([qs, qe]) => start >= qs && end <= qe),
              `command ${i} ${JSON.stringify(c, (_k, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))} wrote [0x${start.toString(16)}, 0x${end.toString(16)}) outside ${JSON.stringify(named)}`,
            );
          }
          writes.length = 0;
        }
      }),
      { numRuns: 300 },
    );
  });
});
