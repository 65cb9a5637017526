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
import { eq, sourceConfig } from "./fixtures.js";
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
