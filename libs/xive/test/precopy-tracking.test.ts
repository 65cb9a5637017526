// Pre-copy tracking of a XIVE controller (issue 14: the stop costs what changed). The model
// compares its arrays with a copy of what it last handed out (XiveChangeTracker), a source block
// only when a write marked it since (SourceBlock.written), and a stopped
// device latches its sources lazily (XiveSource.quiesce). Rules checked here:
// - every kind of change the guest, a device or the VMM can make travels in the next read, and
//   that read holds only what changed (a change the comparison missed fails the byte-for-byte
//   check against the stop-and-copy export);
// - a quiesce walks no source; a source reads as latched (PQ 10 unless 01) all the same, and a
//   trigger while stopped latches its block only;
// - a stop's delta applied in place to the controller built from the earlier reads gives the
//   export; a record that does not fit is refused before anything changes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import type { ControllerState } from "../src/device-state/controller-state.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";
import { ContextRegisters } from "../src/context-registers.js";
import { PQ } from "../src/esb.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import { eq, sourceConfig } from "./fixtures.js";
import { modelKernel } from "./model-kernel.js";
import { LSIS, MASKED_SOURCE, MIGRATION_RAM, xicsMachine, xiveMachine } from "./migration-fixtures.js";
import { XICS_CHANGES, XICS_MSI } from "./xics-changes.js";

const MSI = 0x1300; // routed to (0, 6) with EISN 0x1300
const LSI = LSIS[0]!;

/** A guest's H_INT_SET_SOURCE_CONFIG of MSI at priority 6 as QEMU makes it with the KVM device. */
function guestRoutes(c: InterruptController, server: number): number {
  const args = [2n, BigInt(MSI), BigInt(server), 6n, BigInt(MSI)]; // SET_EISN, EISN unchanged
  return c.hcall(0, HcallOpcode.H_INT_SET_SOURCE_CONFIG, args, modelKernel(c.xive("t"))).returnCode;
}

/** One change (after `setup`, which the first read holds) and how many records of each list it must move (at most). */
interface Change {
  name: string;
  setup?(controller: InterruptController): void;
  apply(controller: InterruptController): void;
  moves: { sources?: number; queues?: number; contexts?: number; lists?: boolean };
}

const CHANGES: Change[] = [
  {
    name: "EAS masked (SOURCE_CONFIG masked)",
    apply: (c) => c.xive("t").setSourceConfig(MSI, sourceConfig(0, 6, 0x55, true)),
    moves: { sources: 1, queues: 1 },
  },
  {
    name: "EAS EISN only",
    apply: (c) => c.xive("t").setSourceConfig(MSI, sourceConfig(0, 6, 0x77)),
    moves: { sources: 1, queues: 1 }, // KVM's target selection counts the source again
  },
  {
    name: "EAS target",
    apply: (c) => c.xive("t").setSourceConfig(MSI, sourceConfig(1, 6, MSI)),
    moves: { sources: 1, queues: 2 },
  },
  {
    name: "PQ by an ESB SET_PQ load",
    apply: (c) => void c.xive("t").esbLoad(MSI, true, 0xd00),
    moves: { sources: 1 },
  },
  {
    name: "LSI line level (ASSERTED)",
    apply: (c) => void c.setIrq(LSI, true),
    moves: { sources: 1, queues: 1, contexts: 1 },
  },
  {
    name: "a trigger (PQ, queue index, presenter)",
    apply: (c) => void c.trigger(MSI),
    moves: { sources: 1, queues: 1, contexts: 1 },
  },
  {
    name: "an ESB trigger store (trigger page)",
    apply: (c) => void c.xive("t").esbStore(MSI, false, 0, 0n),
    moves: { sources: 1, queues: 1, contexts: 1 },
  },
  {
    name: "an ESB EOI load (PQ 10 → 00)",
    setup: (c) => void c.trigger(MSI),
    apply: (c) => void c.xive("t").esbLoad(MSI, true, 0x000),
    moves: { sources: 1 },
  },
  {
    name: "an LSI line lowered (ASSERTED cleared)",
    setup: (c) => void c.setIrq(LSI, true),
    apply: (c) => void c.setIrq(LSI, false),
    moves: { sources: 1 },
  },
  {
    name: "H_INT_RESET (cold reset: EAS, ENDs, PQ 01)",
    setup: (c) => c.selectMode("XIVE"), // the hypercalls answer after CAS
    apply: (c) => assert.equal(c.hcall(0, HcallOpcode.H_INT_RESET, [0n]).returnCode, 0),
    moves: { sources: 8, queues: 3 },
  },
  {
    name: "H_INT_RESET's tables beside a KVM device (EAS, ENDs, ASSERTED)",
    setup: (c) => void c.setIrq(LSI, true),
    apply: (c) => c.xive("t").resetHcallTables(),
    moves: { sources: 8, queues: 3 },
  },
  {
    name: "ASSERTED from the VMM's line level (SourceTable.setAsserted, the native shadow's)",
    apply: (c) => c.xive("t").sources.setAsserted(LSI, true),
    moves: { sources: 1 },
  },
  {
    name: "a trigger of a masked source (PQ only)",
    apply: (c) => void c.trigger(MASKED_SOURCE),
    moves: { sources: 1 },
  },
  {
    name: "queue configuration (a queue moved)",
    apply: (c) => c.xive("t").setQueueConfig(2, 5, eq(0x4_0000n)),
    moves: { queues: 1 },
  },
  {
    name: "END ESn PQ (END ESB SET_PQ)",
    apply: (c) => void c.xive("t").endEsbLoad((0 << 3) | 6, false, 0xe00),
    moves: { queues: 1 },
  },
  {
    name: "H_INT_GET_QUEUE_CONFIG beside a KVM device (the live index read back into the END)",
    setup: (c) => c.selectMode("XIVE"),
    apply: (c) => {
      const kernel = { ...modelKernel(c.xive("t")), queueState: () => ({ qtoggle: 0, qindex: 5 }) };
      assert.equal(c.hcall(0, HcallOpcode.H_INT_GET_QUEUE_CONFIG, [0n, 0n, 6n], kernel).returnCode, 0);
    },
    moves: { queues: 1 },
  },
  {
    name: "QEMU's END alone (a guest's SET_SOURCE_CONFIG for vCPU 2, which has no priority-6 queue: the KVM device keeps the source on vCPU 0's)",
    setup: (c) => c.selectMode("XIVE"),
    apply: (c) => {
      assert.equal(guestRoutes(c, 2), 0);
      assert.equal(c.xive("t").source(MSI)!.server, 0, "the EAS is as it was");
    },
    moves: { sources: 1, queues: 1 }, // KVM's target selection counts the source again
  },
  {
    name: "QEMU's END back where the source is routed (the guest asks for vCPU 0 again: no-op in KVM)",
    setup: (c) => {
      c.selectMode("XIVE");
      assert.equal(guestRoutes(c, 2), 0);
    },
    apply: (c) => assert.equal(guestRoutes(c, 0), 0),
    moves: { sources: 1 },
  },
  {
    name: "TIMA CPPR",
    apply: (c) => c.xive("t").timaStore(1, 0x2_0011, 1, 0x5n),
    moves: { contexts: 1 },
  },
  {
    name: "VP_STATE",
    apply: (c) => c.xive("t").setVpState(2, [0x00ff_0000_0000_0000n, 0n]),
    moves: { contexts: 1 },
  },
  { name: "a vCPU connected", apply: (c) => c.connectVcpu(3), moves: { contexts: 1, lists: true } },
  { name: "a source initialised", apply: (c) => c.initSource(0x1306), moves: { sources: 1, lists: true } },
  { name: "CAS (XIVE selected)", apply: (c) => c.selectMode("XIVE"), moves: {} },
  { name: "CTRL/RESET", apply: (c) => c.xive("t").reset(), moves: { sources: 7, queues: 3 } },
];

/** Merges a read as the destination does (through its bytes). */
function merge(state: ControllerState | undefined, delta: ControllerDelta): ControllerState {
  return mergeControllerDelta(state, decodeControllerDelta(encodeControllerDelta(delta)));
}

const moved = (c: { changed: unknown[]; removed: number[] }) => c.changed.length + c.removed.length;

/**
 * After a first read, `change` applied: the next read holds it (`check` bounds what it moved;
 * the vCPU and source lists only when it says so), and the reads merged with the stop's equal
 * the export byte for byte.
 */
function readAlone(
  controller: InterruptController,
  change: { apply(controller: InterruptController): void; moves: { lists?: boolean } },
  check: (delta: ControllerDelta) => void,
): void {
  let state = merge(undefined, controller.readChanges(true)!);
  assert.equal(controller.readChanges(false), undefined, "nothing changed yet");
  change.apply(controller);
  const delta = controller.readChanges(false);
  assert.ok(delta, "the change is read");
  check(delta);
  if (!change.moves.lists) assert.equal(delta.vcpus ?? delta.machineSources, undefined, "lists");
  state = merge(state, delta);
  controller.quiesce();
  const stop = controller.readChanges(false);
  if (stop) state = merge(state, stop);
  assert.equal(
    Buffer.from(encodeControllerState(state)).toString("hex"),
    Buffer.from(controller.exportState()).toString("hex"),
  );
}

describe("XIVE pre-copy tracking (issue 14): every change travels, and only it", () => {
  for (const change of CHANGES) {
    it(`${change.name}: in the next read, alone; merged reads equal the export`, () => {
      const { controller } = xiveMachine();
      change.setup?.(controller);
      readAlone(controller, change, (delta) => {
        const { sources, queues, contexts } = delta.xive!;
        assert.ok(moved(sources) <= (change.moves.sources ?? 0), "sources");
        assert.ok(moved(queues) <= (change.moves.queues ?? 0), "queues");
        assert.ok(moved(contexts) <= (change.moves.contexts ?? 0), "contexts");
      });
    });
  }

  it("a trigger while stopped (PQ 10 → 11, logged) travels in the stop's read", () => {
    const { controller } = xiveMachine();
    let state = merge(undefined, controller.readChanges(true)!);
    controller.quiesce();
    assert.equal(controller.readChanges(false), undefined, "a quiesce alone changes nothing read");
    controller.trigger(MSI);
    const stop = controller.readChanges(false)!;
    assert.deepEqual(
      stop.xive!.sources.changed.map((s) => [s.irq, s.pq, s.savedPq]),
      [[MSI, PQ.PENDING | 1, PQ.RESET]],
    );
    assert.deepEqual(stop.stoppedTriggers, [MSI]);
    state = merge(state, stop);
    assert.deepEqual(encodeControllerState(state), controller.exportState());
    // The block is latched now: a second change while stopped is marked by its own write.
    controller.setIrq(LSI, true); // same block as MSI (0x1200 and 0x1300 are both in block 4)
    const again = controller.readChanges(false)!;
    assert.deepEqual(
      again.xive!.sources.changed.map((s) => [s.irq, s.asserted]),
      [[LSI, true]],
    );
    state = merge(state, again);
    assert.deepEqual(encodeControllerState(state), controller.exportState());
  });

  it("resume's replay of a stopped LSI assertion (PQ 00 → 10) travels in the next read", () => {
    const { controller } = xiveMachine();
    let state = merge(undefined, controller.readChanges(true)!);
    controller.quiesce();
    controller.setIrq(LSI, true); // latched (reads 10, saved 00), asserted, logged
    state = merge(state, controller.readChanges(false)!);
    controller.resume(); // saved PQs back, then the replay: 00 → 10, forwarded
    const after = controller.readChanges(false)!;
    assert.deepEqual(
      after.xive!.sources.changed.map((s) => [s.irq, s.savedPq]),
      [[LSI, PQ.PENDING]],
    );
    state = merge(state, after);
    controller.quiesce();
    assert.deepEqual(encodeControllerState(state), controller.exportState());
  });

  it("a vCPU's TIMA registers live in its device's register chunk, which a read compares whole", () => {
    const { controller } = xiveMachine();
    const xive = controller.xive("t");
    controller.readChanges(true);
    const chunk = xive.contextRegisters.chunks[ContextRegisters.chunkOf(1)]!;
    const before = Buffer.from(chunk);
    xive.timaStore(1, 0x2_0011, 1, 0x5n); // CPPR of server 1
    assert.notDeepEqual(Buffer.from(chunk), before, "the store wrote the chunk");
    assert.equal(xive.context(1)!.regs.buffer, chunk.buffer);
    assert.deepEqual(
      controller.readChanges(false)!.xive!.contexts.changed.map((c) => c.server),
      [1],
      "only the changed vCPU of the chunk",
    );
    assert.equal(controller.readChanges(false), undefined, "an equal chunk: nothing");
  });

  it("a block nothing marked written is not compared (SourceBlock.written): the read skips it", () => {
    const { controller } = xiveMachine();
    controller.readChanges(true);
    const block = controller.xive("t").sources.blockOf(MSI)!;
    const i = MSI & 1023;
    assert.equal(block.written, false, "the read took the block");
    block.status[i] = (block.status[i]! & ~3) | PQ.QUEUED; // an array write that did not mark
    assert.equal(controller.readChanges(false), undefined, "unmarked: not compared");
    block.written = true;
    assert.deepEqual(
      controller.readChanges(false)!.xive!.sources.changed.map((s) => s.irq),
      [MSI],
      "marked: compared and read",
    );
  });
});

describe("XICS pre-copy tracking (issue 14): every change travels, and only it", () => {
  for (const change of XICS_CHANGES) {
    it(`${change.name}: in the next read, alone; merged reads equal the export`, () => {
      readAlone(xicsMachine().controller, change, (delta) => {
        assert.ok(moved(delta.xics!.sources) <= (change.moves.sources ?? 0), "sources");
        assert.ok(moved(delta.xics!.icps) <= (change.moves.icps ?? 0), "icps");
      });
    });
  }

  it("a source put back to its reset state leaves the state: the read removes it", () => {
    const { controller } = xicsMachine();
    controller.readChanges(true);
    const ics = controller.xics("t").ics;
    const srcno = XICS_MSI - ics.offset;
    // What no call does (a claim stays): the arrays written back to a reset source's, to see the removal.
    ics.flags[srcno] = 0;
    ics.server[srcno] = 0;
    ics.priority[srcno] = 0xff;
    ics.savedPriority[srcno] = 0xff;
    ics.status[srcno] = 0;
    assert.deepEqual(controller.readChanges(false)!.xics!.sources, { changed: [], removed: [XICS_MSI] });
  });
});

describe("XIVE END ranges (issue 14: an idle read compares no END)", () => {
  it("an END range nothing marked written is not compared (EndTable.written): the read skips it", () => {
    const { controller } = xiveMachine();
    controller.readChanges(true);
    const ends = controller.xive("t").savedParts().ends!;
    const index = (0 << 3) | 6;
    assert.equal(ends.written[index >>> 10], 0, "the read took the range");
    ends.w1[index] = ends.w1[index]! ^ 1; // the queue index moved by an array write that did not mark
    assert.equal(controller.readChanges(false), undefined, "unmarked: not compared");
    ends.written[index >>> 10] = 1;
    assert.deepEqual(
      controller.readChanges(false)!.xive!.queues.changed.map((q) => q.endIndex),
      [index],
      "marked: compared and read",
    );
  });
});

describe("XIVE lazy quiesce latch (issue 14: a stop does not walk the sources)", () => {
  it("a quiesce latches no block; sources read PQ 10 (01 stays); a stopped trigger latches its block only", () => {
    const { controller } = xiveMachine();
    const xive = controller.xive("t");
    for (let irq = 0x2000; irq < 0x2000 + 3 * 1024; irq++) controller.initSource(irq);
    controller.quiesce();
    const stopped = xive.sourceEngine.stopped!;
    assert.equal(stopped.savedPq.size, 0, "no block latched by the quiesce");
    assert.equal(xive.source(MSI)!.pq, PQ.PENDING, "PQ 00 reads latched as 10");
    assert.equal(xive.savedPqOf(MSI), PQ.RESET);
    assert.equal(xive.source(0x2000)!.pq, PQ.OFF, "PQ 01 stays 01");
    controller.trigger(MSI);
    assert.deepEqual([...stopped.savedPq.keys()], [MSI >>> 10]);
    assert.equal(xive.source(MSI)!.pq, PQ.PENDING | 1);
    controller.resume();
    assert.equal(xive.sourceEngine.stopped, undefined);
    assert.equal(xive.source(0x1301)!.pq, PQ.RESET, "an untouched block keeps its PQ");
  });
});

describe("a stop's delta applied in place (issue 14: the destination's finish costs what changed)", () => {
  /** The destination's controller built from the source's first read, and the source stopped after `change`. */
  function prepared(change: (source: InterruptController) => void) {
    const { controller: source } = xiveMachine();
    const first = source.readChanges(true)!;
    const built = InterruptController.importState(
      new SparseGuestMemory(MIGRATION_RAM),
      {},
      decodeControllerState(encodeControllerState(merge(undefined, first))),
    );
    change(source);
    source.quiesce();
    return { source, built, stop: source.readChanges(false)! };
  }

  it("equals the export; a record that does not fit is STATE_INCONSISTENT and changes nothing", () => {
    const { source, built, stop } = prepared((c) => {
      c.trigger(MSI);
      c.xive("t").timaStore(1, 0x2_0011, 1, 0x5n);
    });
    const before = built.exportState();
    const bad = structuredClone(stop);
    bad.xive!.sources.changed[0]!.pq = PQ.RESET; // a stopped source must read latched (10 or 11)
    assert.throws(
      () => built.applyStopDelta(bad),
      (e: unknown) => e instanceof XiveError && e.reason === "STATE_INCONSISTENT",
    );
    const stranger = structuredClone(stop);
    stranger.xive!.contexts.changed[0]!.server = 9; // no such vCPU
    assert.throws(() => built.applyStopDelta(stranger), /no vCPU has server 9/);
    assert.deepEqual(built.exportState(), before, "nothing applied");
    assert.equal(built.applyStopDelta(stop), true);
    assert.deepEqual(built.exportState(), source.exportState());
  });

  it("a delta that grows the source list is applied in place too (stop-delta-lists-in-place has the rest)", () => {
    const { source, built, stop } = prepared((c) => c.initSource(0x1306));
    assert.equal(built.applyStopDelta(stop), true);
    assert.deepEqual(built.exportState(), source.exportState());
  });
});
