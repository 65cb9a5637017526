// A queue's source slots after an import, as a KVM destination has them: QEMU's post_load replays
// EQ_CONFIG, then each source's SOURCE_CONFIG into a fresh device, and each unmasked one takes a
// slot of its queue (Linux book3s_xive_native.c update_source_config → xive_try_pick_queue). The
// origin's count also holds its re-routings (none gives a slot back); the destination never saw
// them. So the destination's counts are those of a fresh device given the origin's current
// SOURCE_CONFIGs once, whether it was built from the whole state or had a stop's delta applied.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { mergeControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { Errno } from "@vplane/model-kit";
import { eq, sourceConfig, thrown } from "./fixtures.js";
import { LSIS, MIGRATION_RAM, QUEUES, SERVERS, SOURCES, xiveMachine } from "./migration-fixtures.js";

/** Re-routings after the machine's boot: each takes a slot on the origin; one masks a source. */
function reroute(controller: InterruptController): void {
  const xive = controller.mutableXive("guest");
  xive.setSourceConfig(0x1300, sourceConfig(1, 6, 7));
  xive.setSourceConfig(0x1300, sourceConfig(0, 6, 8));
  xive.setSourceConfig(0x1302, sourceConfig(0, 6, 0x1302));
  xive.setSourceConfig(0x1304, sourceConfig(2, 5, 0, true)); // (a mask alone, same target and EISN, is a no-op in KVM)
}

/** Each queue's source count, by END index (server << 3 | priority). */
function slotCounts(controller: InterruptController): number[] {
  return QUEUES.map(
    ([server, priority]) => controller.xive("t").router.ends!.kvmCount[(server << 3) | priority]!,
  );
}

/** A fresh machine given `origin`'s current SOURCE_CONFIGs once each, as QEMU's post_load gives KVM. */
function configuredOnce(origin: InterruptController): InterruptController {
  const controller = new InterruptController(new SparseGuestMemory(MIGRATION_RAM), { mode: "XIVE" });
  controller.setNrServers(4);
  for (const server of SERVERS) controller.connectVcpu(server);
  const xive = controller.xive("setup");
  for (const [server, priority] of QUEUES) {
    const queue = origin.xive("t").getQueueConfig(server, priority);
    if (queue !== undefined) xive.setQueueConfig(server, priority, queue);
  }
  for (const irq of SOURCES) {
    controller.initSource(irq, { lsi: LSIS.includes(irq) });
    const s = origin.xive("t").source(irq)!;
    if (!s.masked) xive.setSourceConfig(irq, sourceConfig(s.server, s.priority, s.eisn));
  }
  return controller;
}

describe("an import counts a queue's source slots as KVM's restore does, not as the origin did", () => {
  it("built from the exported state: the counts of a fresh device given the same SOURCE_CONFIGs", () => {
    const { controller: origin } = xiveMachine();
    reroute(origin);
    origin.quiesce();
    const imported = InterruptController.importState(
      new SparseGuestMemory(MIGRATION_RAM),
      {},
      origin.exportState(),
    );
    const expected = slotCounts(configuredOnce(origin));
    assert.deepEqual(
      expected,
      [1, 3, 2],
      "(2,5): 0x1301; (0,6): 0x1200, 0x1300, 0x1302; (1,6): 0x1201, 0x1303",
    );
    assert.notDeepEqual(slotCounts(origin), expected, "the origin counts its re-routings too");
    assert.deepEqual(slotCounts(imported), expected);
  });

  it("a stop's delta applied in place (re-routings after the pre-copy read, a queue's page gone): the same", () => {
    const { controller: origin } = xiveMachine();
    const first = origin.readChanges(true)!;
    const built = InterruptController.importState(
      new SparseGuestMemory(MIGRATION_RAM),
      {},
      encodeControllerState(mergeControllerDelta(undefined, first)),
    );
    reroute(origin);
    const xive = origin.mutableXive("guest");
    xive.setSourceConfig(0x1301, sourceConfig(1, 6, 0x1301)); // (2, 5) is left with no source
    xive.setQueueConfig(2, 5, eq(0n, { qshift: 0 })); // and no page: it counts none
    origin.quiesce();
    const stop = decodeControllerDelta(encodeControllerDelta(origin.readChanges(false)!));
    assert.equal(built.applyStopDelta(stop), true, "applied in place");
    assert.deepEqual(slotCounts(built), [0, 3, 3]);
    assert.deepEqual(slotCounts(built), slotCounts(configuredOnce(origin)));
  });
});

/** Where each source is routed ([server, priority], or "masked"), in SOURCES order. */
function routes(controller: InterruptController): (string | [number, number])[] {
  return SOURCES.map((irq) => {
    const s = controller.xive("t").source(irq)!;
    return s.masked ? "masked" : [s.server, s.priority];
  });
}

/** `origin`'s queue (server, priority) loses its page (the sources routed to it stay); then it is quiesced. */
function resetQueue(origin: InterruptController, server: number, priority: number): void {
  origin.mutableXive("guest").setQueueConfig(server, priority, eq(0n, { qshift: 0 }));
  origin.quiesce();
}

// A queue reset (EQ_CONFIG qshift 0) leaves the sources routed to it as they are: Linux
// book3s_xive_native.c kvmppc_xive_native_set_queue_config touches no source. QEMU's post_load
// (spapr_xive_kvm.c) then gives the destination EQ_CONFIG of the valid ENDs only and SOURCE_CONFIG
// of every source in LISN order; kvmppc_xive_select_target finds no page on the asked queue
// (xive_try_pick_queue: -ENXIO) and takes the first vCPU whose queue at that priority has a page
// and room, else -EBUSY, which fails the load.
describe("a source routed to a queue that has since lost its page, at import: KVM's restore moves it or fails EBUSY", () => {
  it("another vCPU has a queue at that priority: the import routes the source there, as a fresh KVM device would", () => {
    const { controller: origin } = xiveMachine();
    resetQueue(origin, 1, 6);
    assert.deepEqual(
      origin.xive("t").source(0x1302)!.server,
      1,
      "the origin keeps the routing (live KVM too)",
    );
    const imported = InterruptController.importState(
      new SparseGuestMemory(MIGRATION_RAM),
      {},
      origin.exportState(),
    );
    const fresh = configuredOnce(origin);
    assert.deepEqual(routes(imported), routes(fresh));
    assert.deepEqual(
      routes(imported),
      [[0, 6], [0, 6], [0, 6], [2, 5], [0, 6], [0, 6], [2, 5], "masked"],
      "0x1201, 0x1302 and 0x1303 moved from (1, 6) to (0, 6)",
    );
    assert.deepEqual(slotCounts(imported), slotCounts(fresh));
    assert.deepEqual(slotCounts(imported), [2, 5, 0]);
  });

  it("no other vCPU has a queue at that priority: the import fails EBUSY, as SOURCE_CONFIG does on a fresh device", () => {
    const { controller: origin } = xiveMachine();
    resetQueue(origin, 2, 5); // 0x1301 and 0x1304; no other vCPU has a priority 5 queue
    assert.equal(thrown(() => configuredOnce(origin)).errno, Errno.EBUSY, "KVM's SOURCE_CONFIG");
    const error = thrown(() =>
      InterruptController.importState(new SparseGuestMemory(MIGRATION_RAM), {}, origin.exportState()),
    );
    assert.deepEqual([error.errno, error.reason], [Errno.EBUSY, "RESTORED_SOURCE_HAS_NO_QUEUE"]);
  });

  it("a stop's delta applied in place: the same move, or EBUSY with the destination unchanged", () => {
    for (const [server, priority] of [
      [1, 6],
      [2, 5],
    ] as const) {
      const { controller: origin } = xiveMachine();
      const first = origin.readChanges(true)!;
      const built = InterruptController.importState(
        new SparseGuestMemory(MIGRATION_RAM),
        {},
        encodeControllerState(mergeControllerDelta(undefined, first)),
      );
      resetQueue(origin, server, priority);
      const stop = decodeControllerDelta(encodeControllerDelta(origin.readChanges(false)!));
      if (server === 2) {
        const before = built.exportState();
        assert.equal(thrown(() => built.applyStopDelta(stop)).errno, Errno.EBUSY);
        assert.deepEqual(built.exportState(), before, "nothing applied");
        continue;
      }
      assert.equal(built.applyStopDelta(stop), true, "applied in place");
      assert.deepEqual(routes(built), routes(configuredOnce(origin)));
      assert.deepEqual(slotCounts(built), slotCounts(configuredOnce(origin)));
    }
  });

  it("a queue that gets its page back before the stop takes back, in place, the sources the build moved off it", () => {
    const { controller: origin } = xiveMachine();
    origin.mutableXive("guest").setQueueConfig(1, 6, eq(0n, { qshift: 0 }));
    const built = InterruptController.importState(
      new SparseGuestMemory(MIGRATION_RAM),
      {},
      encodeControllerState(mergeControllerDelta(undefined, origin.readChanges(true)!)),
    );
    assert.deepEqual(built.xive("t").source(0x1302)!.server, 0, "moved off the pageless (1, 6) queue");
    origin.mutableXive("guest").setQueueConfig(1, 6, eq(0x3_0000n)); // no source record changes
    origin.quiesce();
    const stop = decodeControllerDelta(encodeControllerDelta(origin.readChanges(false)!));
    assert.equal(stop.xive!.sources.changed.length, 0);
    assert.equal(built.applyStopDelta(stop), true, "applied in place");
    assert.deepEqual(routes(built), routes(configuredOnce(origin)));
    assert.deepEqual(routes(built), [[0, 6], [1, 6], [0, 6], [2, 5], [1, 6], [1, 6], [2, 5], "masked"]);
    assert.deepEqual(slotCounts(built), slotCounts(configuredOnce(origin)));
  });
});
