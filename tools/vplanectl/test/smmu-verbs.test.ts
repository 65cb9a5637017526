// The SMMU verbs: the guest's stage-1 config attached, a DMA translation faulting because stage 2
// maps nothing (the fault read back with `smmus events`), then the mapping made and used.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startEmbeddedStack, type EmbeddedStack } from "./embedded-stack.js";

interface Translation {
  outcome: string;
  address: string;
  event?: { idName: string; streamId: number } | null;
}

describe("vplanectl smmus verbs", () => {
  let stack: EmbeddedStack;
  /** The device's DMA at `iova`, by its physical StreamID 16. */
  const translate = (iova: string) =>
    stack.json<Translation>(["smmus", "translate", "vm-1", "s0", "--stream-id", "16", "--iova", iova]);
  before(async () => {
    stack = await startEmbeddedStack();
    await stack.createVm("vm-1", ["--smmu", "s0=16:1"]);
  });
  after(() => stack?.stop());

  it("attach --stage1 translate without --cd-table, or with neither form, is a usage error", async () => {
    assert.equal((await stack.cli(["smmus", "attach", "vm-1", "s0", "--stage1", "translate"])).code, 2);
    assert.equal((await stack.cli(["smmus", "attach", "vm-1", "s0"])).code, 2);
  });

  it("attach (stage 1 bypassed), translate with nothing in stage 2: a stage-2 fault each time, replayed by smmus events --since", async () => {
    const attached = await stack.json<{ storedSte0: string }>([
      "smmus",
      "attach",
      "vm-1",
      "s0",
      "--stage1",
      "bypass",
    ]);
    assert.equal(attached.storedSte0, "0", "the seed form stores no guest STE");
    for (let i = 0; i < 3; i++) {
      const faulted = await translate("4096");
      assert.equal(faulted.outcome, "TRANSLATION_OUTCOME_FAULT");
    }
    // Events are numbered from 0: after 1 comes the third fault, 2.
    const printed = await stack.cli([
      "smmus",
      "events",
      "vm-1",
      "s0",
      "--since",
      "1",
      "--idle-ms",
      "500",
      "-o",
      "json",
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    const events = printed.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            id: string;
            event: string;
            data: { event: { record: { idName: string; streamId: number } } };
          },
      );
    // The event names the guest's (virtual) StreamID, 1, not the device's physical 16.
    assert.deepEqual(
      events.map((e) => [e.id, e.event, e.data.event.record.idName, e.data.event.record.streamId]),
      [["2", "fault", "F_TRANSLATION", 1]],
      printed.stdout,
    );
  });

  it("map puts the page in stage 2; the same translation then succeeds", async () => {
    await stack.json([
      "smmus",
      "map",
      "vm-1",
      "s0",
      "--ipa",
      "0",
      "--host-address",
      "0x200000",
      "--size",
      "0x10000",
    ]);
    const translated = await translate("0x1008");
    assert.equal(translated.outcome, "TRANSLATION_OUTCOME_TRANSLATED");
    assert.equal(translated.address, String(0x201008));
  });

  it("an SMMU the VM does not have is 404 SMMU_NOT_FOUND", async () => {
    const missing = await stack.cli([
      "smmus",
      "translate",
      "vm-1",
      "nope",
      "--stream-id",
      "16",
      "--iova",
      "0",
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND SMMU_NOT_FOUND/);
  });
});
