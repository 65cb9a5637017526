// A batch applies its entries in order (device.proto), as successive KVM ioctls would: a source
// named twice in one InitSources / ConfigureSources ends as its last entry, in the model and in the
// store (one write per source; a store transaction refuses two writes of one key, which answered
// INTERNAL after the model had already applied the batch).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kvmConfig, routedXive } from "./conformance-fixtures.js";
import { removeDir, startHarness, tempDataDir, type Harness } from "./service-harness.js";

const IRQ = 0x1300;
const LSI = 0x1200;

describe("a batch that names a source twice", () => {
  it("ends as its last entry in the model and, after a restart, in the store", async () => {
    const dataDir = tempDataDir();
    let h: Harness | undefined;
    try {
      h = await startHarness(dataDir);
      const name = await routedXive(h, "twice"); // IRQ routed to 0/6, EISN IRQ

      const init = await h.call("initSources", {
        name,
        sources: [
          { irq: LSI, levelSensitive: true, asserted: false },
          { irq: LSI, levelSensitive: true, asserted: true },
        ],
        requestId: "",
      });
      assert.equal(init.applied, 2);

      const configured = await h.call("configureSources", {
        name,
        sources: [
          { irq: IRQ, kvmConfig: kvmConfig(0, 6, 0x11) },
          { irq: LSI, kvmConfig: kvmConfig(0, 6, 0x21) },
          { irq: IRQ, kvmConfig: kvmConfig(0, 6, 0x12) },
        ],
        requestId: "",
      });
      assert.deepEqual(configured.effectiveServers, [0, 0, 0]);

      const observed = async (on: Harness) => {
        const irq = (await on.call("getSourceConfig", { name, irq: IRQ })).source!;
        const lsi = (await on.call("getSourceConfig", { name, irq: LSI })).source!;
        return { irq: [irq.eisn, irq.kvmConfig], lsi: [lsi.levelSensitive, lsi.asserted, lsi.eisn] };
      };
      const expected = { irq: [0x12, kvmConfig(0, 6, 0x12)], lsi: [true, true, 0x21] };
      assert.deepEqual(await observed(h), expected, "the model holds the last entry of each source");

      await h.stop();
      h = undefined;
      h = await startHarness(dataDir);
      assert.deepEqual(await observed(h), expected, "the store holds the same after a restart");
    } finally {
      await h?.stop();
      removeDir(dataDir);
    }
  });
});
