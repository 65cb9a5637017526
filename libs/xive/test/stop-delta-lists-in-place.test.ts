// A stop-and-copy delta that changes the vCPU or machine-source lists (a vCPU connected, a
// source initialised after the last pre-copy iteration), applied in place to the controller the
// destination built during pre-copy (issue 14, point 2). Rules checked:
// - the controller grown in place exports byte for byte what a controller imported whole from
//   the source's final export does, and after resume the guest sees the same (queues in RAM,
//   PQ, TIMA, lines) on the same triggers;
// - a delta whose lists do not fit the records it carries is refused as the full import of the
//   state it makes is (STATE_* naming the list), KVM's restore EBUSY likewise, before anything
//   changes (no vCPU connected, no source initialised);
// - a delta that drops a vCPU or moves it to another server is not applied in place (false).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";
import { eq, sourceConfig } from "./fixtures.js";
import { assertRefusedUnchanged, type Refusal } from "./stop-delta-refusals.js";
import { MIGRATION_RAM, SOURCES, copyRam, signalRecorder, xiveMachine } from "./migration-fixtures.js";

const wire = (delta: ControllerDelta) => decodeControllerDelta(encodeControllerDelta(delta));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const NEW_SERVER = 3;
const NEW_SOURCE = 0x1306;
/** A source in a block (1,024 sources) the machine had none in. */
const BLOCK_SOURCE = 0x2400;
/** A source below the machine's others (restore-targeting meets its record before theirs). */
const LOW_SOURCE = 0x1100;

/** The source's machine (xiveMachine, or `machine`) read once, changed, stopped; the destination built from the read. */
function prepared(
  change: (c: InterruptController) => void,
  whileStopped?: (c: InterruptController) => void,
  machine: () => { controller: InterruptController; memory: SparseGuestMemory } = () => xiveMachine(),
) {
  const { controller: source, memory } = machine();
  const first = wire(source.readChanges(true)!);
  const state = encodeControllerState(mergeControllerDelta(undefined, first));
  change(source);
  source.quiesce();
  whileStopped?.(source);
  const stop = wire(source.readChanges(false)!);
  const recorder = signalRecorder();
  const ram = copyRam(memory);
  const built = InterruptController.importState(ram, { onSignal: recorder.sink }, state);
  return { source, memory, stop, built: { controller: built, ram, recorder } };
}

/** What the guest sees after resume and a trigger of every source: RAM, PQ, OS rings, lines. */
function observe({ controller, ram, recorder }: ReturnType<typeof prepared>["built"]): unknown {
  controller.resume();
  const xive = controller.xive("observe");
  const irqs = [LOW_SOURCE, ...SOURCES, NEW_SOURCE, BLOCK_SOURCE].filter((irq) => xive.sources.isValid(irq));
  for (const irq of irqs) controller.trigger(irq);
  const servers = controller.connectedVcpus().map((v) => v.server);
  return {
    ram: Buffer.from(ram.read(0, ram.size)).toString("base64"),
    pq: irqs.map((irq) => [irq, xive.esbLoad(irq, true, 0x800)]),
    tima: servers.map((server) => [server, xive.timaLoad(server, 0x2_0010, 8)]),
    lines: servers.map((server) => [
      server,
      xive.context(server)!.raised,
      recorder.lines.get(server) ?? false,
    ]),
  };
}

function assertAsImportedWhole(
  built: ReturnType<typeof prepared>["built"],
  source: InterruptController,
  memory: SparseGuestMemory,
) {
  const final = source.exportState();
  const recorder = signalRecorder();
  const ram = copyRam(memory);
  const whole = {
    controller: InterruptController.importState(ram, { onSignal: recorder.sink }, final),
    ram,
    recorder,
  };
  // Not the final export itself: a KVM queue's source count on the origin keeps every routing
  // since its device was made; an import counts the sources routed to it (applyXiveChanges).
  assert.equal(hex(built.controller.exportState()), hex(whole.controller.exportState()));
  assert.deepEqual(observe(built), observe(whole));
}

/** vCPU 3 connected with a priority-4 queue, its OS CPPR opened, and MSI 0x1304 routed to it. */
function connectWithQueue(c: InterruptController) {
  c.connectVcpu(NEW_SERVER);
  const xive = c.xive("t");
  xive.setQueueConfig(NEW_SERVER, 4, eq(0x4_0000n));
  xive.timaStore(NEW_SERVER, 0x2_0011, 1, 0xffn);
  xive.setSourceConfig(0x1304, sourceConfig(NEW_SERVER, 4, 0x44));
}

describe("XIVE stop delta that grows the lists, applied in place (issue 14)", () => {
  const kinds: [string, (c: InterruptController) => void, ((c: InterruptController) => void)?][] = [
    ["a vCPU connected (a context), nothing else", (c) => c.connectVcpu(NEW_SERVER)],
    [
      "a vCPU connected with a queue, a source routed to it, triggered while stopped",
      connectWithQueue,
      (c) => void c.trigger(0x1304),
    ],
    [
      "a source initialised and routed to a queue, triggered while stopped",
      (c) => {
        c.initSource(NEW_SOURCE);
        c.xive("t").setSourceConfig(NEW_SOURCE, sourceConfig(1, 6, 0x66));
        c.xive("t").esbLoad(NEW_SOURCE, true, 0xc00);
      },
      (c) => void c.trigger(NEW_SOURCE),
    ],
    [
      "an MSI initialised again as an LSI (its LSI setting changes)",
      (c) => c.initSource(0x1304, { lsi: true }),
    ],
    [
      "a source initialised in a block of sources of its own, routed, triggered while stopped",
      (c) => {
        c.initSource(BLOCK_SOURCE);
        c.xive("t").setSourceConfig(BLOCK_SOURCE, sourceConfig(0, 6, 0x77));
        c.xive("t").esbLoad(BLOCK_SOURCE, true, 0xc00);
      },
      (c) => void c.trigger(BLOCK_SOURCE),
    ],
    [
      // KVM's restore (restore-targeting.ts) tries the vCPUs in kvm_for_each_vcpu order, the new one among them.
      "a queue reset, a new vCPU's queue of its priority: its sources move to the new vCPU as KVM's restore moves them",
      (c) => {
        c.connectVcpu(NEW_SERVER);
        c.xive("t").setQueueConfig(NEW_SERVER, 5, eq(0x5_0000n));
        c.xive("t").timaStore(NEW_SERVER, 0x2_0011, 1, 0xffn);
        c.xive("t").setQueueConfig(2, 5, eq(0n, { qshift: 0 })); // 0x1301 and 0x1304 stay routed to it
      },
    ],
  ];
  for (const [name, change, whileStopped] of kinds) {
    it(`${name}: equals the controller imported whole`, () => {
      const { source, memory, stop, built } = prepared(change, whileStopped);
      assert.ok(stop.vcpus ?? stop.machineSources, "the lists are in the stop delta");
      assert.equal(built.controller.applyStopDelta(stop), true);
      assertAsImportedWhole(built, source, memory);
    });
  }

  it("the first vCPUs connected after the last iteration (the END table made in place)", () => {
    const bare = () => {
      const memory = new SparseGuestMemory(MIGRATION_RAM);
      const controller = new InterruptController(memory, { mode: "XIVE" });
      controller.setNrServers(4);
      for (const irq of SOURCES) controller.initSource(irq);
      return { controller, memory };
    };
    const { source, memory, stop, built } = prepared(
      (c) => {
        c.connectVcpu(0);
        c.connectVcpu(1, 2);
        c.xive("t").setQueueConfig(2, 5, eq(0x1_0000n));
        c.xive("t").setSourceConfig(0x1300, sourceConfig(2, 5, 0x99));
        c.xive("t").esbLoad(0x1300, true, 0xc00);
      },
      (c) => void c.trigger(0x1300),
      bare,
    );
    assert.equal(built.controller.xive("t").ends, undefined, "no END table before");
    assert.equal(built.controller.applyStopDelta(stop), true);
    assertAsImportedWhole(built, source, memory);
  });

  it("lists that do not fit the records are refused as the full import refuses them; nothing changes", () => {
    const { stop, built } = prepared((c) => {
      connectWithQueue(c);
      c.initSource(NEW_SOURCE);
    });
    const { controller } = built;
    const cases: Refusal[] = [
      [
        "a new vCPU without its context",
        (d) => (d.xive!.contexts.changed = d.xive!.contexts.changed.filter((c) => c.server !== NEW_SERVER)),
        "STATE_INCONSISTENT",
        "xive.contexts",
      ],
      [
        "a new source without its record",
        (d) => (d.xive!.sources.changed = d.xive!.sources.changed.filter((s) => s.irq !== NEW_SOURCE)),
        "STATE_INCONSISTENT",
        "xive.sources",
      ],
      [
        "a new source's record of another LSI setting",
        (d) => (d.machineSources!.find((s) => s.irq === NEW_SOURCE)!.lsi = true),
        "STATE_INCONSISTENT",
        `xive.sources.changed[${stop.xive!.sources.changed.findIndex((s) => s.irq === NEW_SOURCE)}].status`,
      ],
      [
        "a queue of a vCPU still not connected",
        (d) => (d.vcpus = d.vcpus!.filter((v) => v.server !== NEW_SERVER)),
        "STATE_INCONSISTENT",
        `xive.queues.changed[${stop.xive!.queues.changed.findIndex((q) => q.endIndex >>> 3 === NEW_SERVER)}].end_index`,
      ],
      [
        "a source the machine keeps removed",
        (d) => d.xive!.sources.removed.push(0x1300),
        "STATE_INCONSISTENT",
        "xive.sources",
      ],
      [
        "a source the state lacks removed",
        (d) => d.xive!.sources.removed.push(0x1400),
        "STATE_DELTA_MISMATCH",
        "xive.sources.removed",
      ],
      [
        "a context of a vCPU kept removed",
        (d) => d.xive!.contexts.removed.push(1),
        "STATE_INCONSISTENT",
        "xive.contexts",
      ],
    ];
    assertRefusedUnchanged(controller, stop, cases);
    assert.equal(controller.applyStopDelta(stop), true, "the delta itself still applies");
  });

  for (const irq of [LOW_SOURCE, BLOCK_SOURCE])
    it(`a new source (${irq.toString(16)}) routed to a queue left without a page: EBUSY as KVM's restore, before any change`, () => {
      const { source, stop, built } = prepared((c) => {
        c.connectVcpu(NEW_SERVER);
        c.xive("t").setQueueConfig(NEW_SERVER, 4, eq(0x4_0000n));
        c.initSource(irq);
        c.xive("t").setSourceConfig(irq, sourceConfig(NEW_SERVER, 4, 0x55));
        c.xive("t").setQueueConfig(NEW_SERVER, 4, eq(0n, { qshift: 0 })); // the source stays routed
      });
      assert.throws(
        () => InterruptController.importState(new SparseGuestMemory(MIGRATION_RAM), {}, source.exportState()),
        (e: unknown) => e instanceof XiveError && e.reason === "RESTORED_SOURCE_HAS_NO_QUEUE",
        "the full import refuses it",
      );
      const before = built.controller.exportState();
      assert.throws(
        () => built.controller.applyStopDelta(stop),
        (e: unknown) => e instanceof XiveError && e.reason === "RESTORED_SOURCE_HAS_NO_QUEUE",
      );
      assert.equal(hex(built.controller.exportState()), hex(before), "nothing applied");
    });

  it("a delta that drops a vCPU or a source, or moves a vCPU to another server, is not applied in place (false, nothing done)", () => {
    const { stop, built } = prepared((c) => c.connectVcpu(NEW_SERVER));
    const before = built.controller.exportState();
    const dropped = structuredClone(stop);
    dropped.vcpus = dropped.vcpus!.filter((v) => v.vcpuId !== 1);
    assert.equal(built.controller.applyStopDelta(dropped), false);
    const moved = structuredClone(stop);
    moved.vcpus![1]!.server = 3;
    assert.equal(built.controller.applyStopDelta(moved), false);
    const sourceDropped = structuredClone(stop);
    sourceDropped.machineSources = [...SOURCES.slice(1), NEW_SOURCE].map((irq) => ({ irq, lsi: false }));
    sourceDropped.machineSources[0]!.lsi = true; // 0x1201 is an LSI
    assert.equal(built.controller.applyStopDelta(sourceDropped), false, "a source dropped");
    assert.equal(hex(built.controller.exportState()), hex(before));
  });
});
