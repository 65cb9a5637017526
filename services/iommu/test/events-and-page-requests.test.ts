import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FileGuestMemory } from "@vplane/guest-memory";
import type { StreamEventBatchesResponse } from "@vplane/proto/gen/vplane/iommu/v1/fault";
import { TranslationOutcome } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { GuestTables } from "../src/testing/guest-tables.js";
import { collect, removeDir, startIommu, type IommuHarness } from "./iommu-harness.js";
import { attachInvalidSte, attachWithSte, createSmmu } from "./smmu-fixture.js";

const RAM = 64 * 1024 * 1024;

describe("event stream (DESIGN: streams resume from a sequence and say when events were dropped)", () => {
  let h: IommuHarness;
  let name: string;

  before(async () => {
    h = await startIommu();
    name = await createSmmu(h, "vm1", "smmu0", { mapped: RAM });
    await attachInvalidSte(h, name, 0x10, 0x99);
  });
  after(async () => {
    await h.stop();
    removeDir(h.dataDir);
  });

  it("several subscribers each get every event, with the vSID, the 32-byte record and the vEVENTQ sequence", async () => {
    // From the log's next sequence, so no event is missed however late the streams start.
    const fromSequence = h.registry.find(name)!.backend.log.nextSequence;
    const a = collect(h.client, { name, fromSequence });
    const b = collect(h.client, { name, fromSequence });
    for (let i = 0; i < 3; i++)
      await h.call("translate", { name, streamId: 0x10, iova: BigInt(i * 0x1000), write: false });
    for (const s of [a, b]) {
      const got = await s.next(3);
      const events = got.map((m) => (m.kind?.$case === "event" ? m.kind.value : undefined));
      assert.deepEqual(
        events.map((e) => [e?.record?.idName, e?.record?.streamId, e?.forwarded, e?.record?.record.length]),
        Array(3).fill(["C_BAD_STE", 0x99, true, 32]),
      );
      assert.deepEqual(
        got.map((m) => m.sequence - got[0]!.sequence),
        [0n, 1n, 2n],
      );
      assert.deepEqual(
        events.map((e) => e!.veventqSequence - events[0]!.veventqSequence),
        [0, 1, 2],
      );
      s.cancel();
    }
  });

  it("resumes from a sequence; a subscriber asking for more than the buffer holds gets a LostEvents count first", async () => {
    const entry = h.registry.find(name)!;
    const start = entry.backend.log.nextSequence;
    for (let i = 0; i < 4096 + 10; i++) entry.backend.translate(0x10, undefined, 0n, false);
    const s = collect(h.client, { name, fromSequence: start });
    const [first, second] = await s.next(2);
    assert.equal(first?.kind?.$case, "lost");
    assert.equal(first?.kind?.$case === "lost" && first.kind.value.count, 10n);
    assert.equal(second?.sequence, start + 10n);
    s.cancel();
    const resumed = collect(h.client, { name, fromSequence: start + 4000n });
    const [m] = await resumed.next(1);
    assert.equal(m?.sequence, start + 4000n);
    assert.equal(m?.kind?.$case, "event");
    resumed.cancel();
  });
  it("StreamEventBatches carries the same messages, as many per batch as are ready (max_batch bounds it)", async () => {
    const entry = h.registry.find(name)!;
    const from = entry.backend.log.nextSequence;
    for (let i = 0; i < 10; i++) entry.backend.translate(0x10, undefined, 0n, false);
    const stream = h.client.streamEventBatches({ name, fromSequence: from, maxBatch: 4 });
    const batches: number[] = [];
    const sequences: bigint[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (b: StreamEventBatchesResponse) => {
        batches.push(b.messages.length);
        for (const m of b.messages) sequences.push(m.sequence);
        if (sequences.length >= 10) resolve();
      });
      stream.on("error", reject);
    });
    stream.cancel();
    assert.deepEqual(batches, [4, 4, 2]);
    assert.deepEqual(
      sequences.map((q) => q - from),
      Array.from({ length: 10 }, (_, i) => BigInt(i)),
    );
    const tooBig = h.client.streamEventBatches({ name, maxBatch: 5000 });
    const error = await new Promise<Error>((resolve) => tooBig.on("error", resolve));
    assert.match(error.message, /max_batch/);
  });
});

const PAGE_REQUEST_TIMEOUT_MS = 2000;

describe("page requests through the API (iommufd viommu_alloc_nested_iopf port)", () => {
  let h: IommuHarness;
  let ram: FileGuestMemory;
  let name: string;
  let tables: GuestTables;

  before(async () => {
    h = await startIommu();
    name = await createSmmu(h, "vm1", "smmu0", {
      guestMemory: { path: "ram", sizeBytes: BigInt(RAM) },
      mapped: RAM,
      // Long enough for a client's answer to arrive first on a loaded machine (300 ms did not at
      // load 60), short enough for the timeout case below.
      pageRequestTimeoutMs: PAGE_REQUEST_TIMEOUT_MS,
    });
    ram = new FileGuestMemory(join(h.dataDir, "ram"), RAM);
    tables = new GuestTables(ram, 0x10_0000);
    tables.writeCd(0x8000, 4);
    await attachWithSte(h, name, {
      streamId: 0x10,
      virtualStreamId: 0x99,
      pageRequests: true,
      config: 5,
      contextPtr: 0x8000,
    });
  });
  after(async () => {
    ram.close();
    await h.stop();
    removeDir(h.dataDir);
  });

  it("a DMA to an unmapped page waits; the VMM sees the page request, maps it, answers SUCCESS; the DMA completes", async () => {
    const s = collect(h.client, { name, fromSequence: h.registry.find(name)!.backend.log.nextSequence });
    const dma = h.call("dmaWrite", {
      name,
      streamId: 0x10,
      iova: 0x7000_0010n,
      data: Buffer.from([1, 2, 3]),
    });
    const [m] = await s.next(1);
    assert.equal(m?.kind?.$case, "pageRequest");
    const request = m.kind.$case === "pageRequest" ? m.kind.value : undefined;
    assert.deepEqual([request?.virtualStreamId, request?.address, request?.perm], [0x99, 0x7000_0000n, 2]);
    tables.map(0x7000_0000, 0x20_0000);
    await h.call("respondPageRequest", { name, cookie: request!.cookie, code: 0, requestId: "" });
    const done = await dma;
    assert.equal(done.outcome, TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED);
    assert.equal(done.pageResponseCode, 0);
    assert.deepEqual([...ram.read(0x20_0010, 3)], [1, 2, 3]);
    s.cancel();
  });

  it("INVALID ends the DMA with the page request's outcome; no answer ends it at the timeout", async () => {
    const s = collect(h.client, { name, fromSequence: h.registry.find(name)!.backend.log.nextSequence });
    const dma = h.call("dmaRead", { name, streamId: 0x10, iova: 0x7100_0000n, length: 8 });
    const [m] = await s.next(1);
    const cookie = m?.kind?.$case === "pageRequest" ? m.kind.value.cookie : -1;
    await h.call("respondPageRequest", { name, cookie, code: 1, requestId: "" });
    const refused = await dma;
    assert.deepEqual(
      [refused.outcome, refused.pageResponseCode, refused.pageRequestTimedOut],
      [TranslationOutcome.TRANSLATION_OUTCOME_PAGE_REQUEST, 1, false],
    );
    const started = Date.now();
    const timedOut = await h.call("dmaRead", { name, streamId: 0x10, iova: 0x7200_0000n, length: 8 });
    assert.deepEqual(
      [timedOut.outcome, timedOut.pageResponseCode, timedOut.pageRequestTimedOut],
      [TranslationOutcome.TRANSLATION_OUTCOME_PAGE_REQUEST, 2, true],
    );
    assert.ok(Date.now() - started >= PAGE_REQUEST_TIMEOUT_MS - 50);
    s.cancel();
  });
});
