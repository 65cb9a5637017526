// A queue's source slots, KVM's rule kept (issue 17, "decide and document"): each routing that
// changes a source's server, priority or EISN takes a slot of the queue it lands on (entries −
// XIVE_Q_GAP: 16,382 for 64 KiB), and none comes back (book3s_xive.c xive_try_pick_queue only
// counts up). The refusal says so and what the caller can do; a new controller starts afresh.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno } from "@vplane/xive";
import { kvmConfig, routedXive } from "./conformance-fixtures.js";
import { failure, suiteHarness } from "./service-harness.js";

const SLOTS_PER_QUEUE = 16384 - 2;
const BATCH = 4096;
const IRQ = 0x1300;
/** The sources re-routed: one 4,096-source block (IRQ is among them). */
const FIRST = 0x1000;

describe("a queue's source slots: used up by re-routings, never returned (KVM)", () => {
  const h = suiteHarness();

  /**
   * Routes sources FIRST.. FIRST+BATCH-1 to queue 0/6 `count` times in all, round after round,
   * each round with a new EISN (a batch names each source once).
   */
  async function reroute(name: string, count: number): Promise<void> {
    await h.call("initSources", {
      name,
      sources: Array.from({ length: BATCH }, (_, i) => ({
        irq: FIRST + i,
        levelSensitive: false,
        asserted: false,
      })),
      requestId: "",
    });
    for (let done = 0; done < count; done += BATCH) {
      const sources = Array.from({ length: Math.min(BATCH, count - done) }, (_, i) => ({
        irq: FIRST + i,
        kvmConfig: kvmConfig(0, 6, 1 + done / BATCH),
      }));
      await h.call("configureSources", { name, sources, requestId: "" });
    }
  }

  it("after 16,382 routings one queue takes no more: RESOURCE_EXHAUSTED, EBUSY, QUEUE_SLOTS_EXHAUSTED with what to do; an unchanged routing still passes; a recreated controller routes again", async () => {
    const name = await routedXive(h, "slots"); // its routing of IRQ took the first slot
    await reroute(name, SLOTS_PER_QUEUE - 1);
    const current = (await h.call("getSourceConfig", { name, irq: IRQ })).source!.kvmConfig;

    const refused = await failure(
      h.call("configureSources", {
        name,
        sources: [{ irq: IRQ, kvmConfig: kvmConfig(0, 6, 7) }],
        requestId: "",
      }),
    );
    assert.deepEqual(
      [refused.code, refused.errno, refused.reason, refused.field],
      ["RESOURCE_EXHAUSTED", Errno.EBUSY, "QUEUE_SLOTS_EXHAUSTED", "sources[0].priority"],
    );
    assert.match(refused.message, /\(16382\)/, "the queue's slot count");
    assert.match(refused.message, /retrying fails the same way/);
    assert.match(refused.message, /unchanged sources .* take no slot/);
    assert.match(refused.message, /DeleteController, CreateController/);
    assert.equal(
      (await h.call("getSourceConfig", { name, irq: IRQ })).source!.kvmConfig,
      current,
      "unchanged",
    );

    await h.call("configureSources", { name, sources: [{ irq: IRQ, kvmConfig: current }], requestId: "" });

    await h.call("deleteController", { name, requestId: "" });
    const again = await routedXive(h, "slots");
    await reroute(again, 1);
  });

  it("no queue at the priority at all: NO_QUEUE_AVAILABLE, EBUSY, telling to configure one", async () => {
    const name = await routedXive(h, "no-queue");
    const refused = await failure(
      h.call("configureSources", {
        name,
        sources: [{ irq: IRQ, kvmConfig: kvmConfig(0, 5, 1) }],
        requestId: "",
      }),
    );
    assert.deepEqual(
      [refused.code, refused.errno, refused.reason],
      ["RESOURCE_EXHAUSTED", Errno.EBUSY, "NO_QUEUE_AVAILABLE"],
    );
    assert.match(
      refused.message,
      /no connected vCPU has a priority 5 queue: configure one \(ConfigureQueue\)/,
    );
  });
});
