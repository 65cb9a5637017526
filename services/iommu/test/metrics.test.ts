import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FileGuestMemory } from "@vplane/guest-memory";
import { TranslationOutcome } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { ServiceMetrics } from "@vplane/service-kit";
import { sampleValue, scrapeMetrics } from "@vplane/service-kit/testing";
import type { PageRequest } from "@vplane/smmuv3";
import { IommuMetrics } from "../src/iommu-metrics.js";
import { GuestTables } from "../src/testing/guest-tables.js";
import { collect, removeDir, startIommu, tempDataDir, type IommuHarness } from "./iommu-harness.js";
import { attachInvalidSte, attachWithSte, createSmmu } from "./smmu-fixture.js";

const RAM = 64 * 1024 * 1024;
const IOVA = 0x8080_1234;
/** A second page, only DMAs touch it. */
const DMA_IOVA = 0x8090_0000;

describe("metrics (VPLANE_IOMMU_METRICS_ADDR): translations and IOTLB hits, faults, DMAs, the event stream", () => {
  let h: IommuHarness;
  let ram: FileGuestMemory;
  let name: string;
  const scrape = () => scrapeMetrics(h.running.metricsAddress!);

  before(async () => {
    const dataDir = tempDataDir();
    h = await startIommu(dataDir, { VPLANE_IOMMU_METRICS_ADDR: "127.0.0.1:0" });
    name = await createSmmu(h, "vm1", "smmu0", {
      mapped: RAM,
      guestMemory: { path: "ram", sizeBytes: BigInt(RAM) },
    });
    ram = new FileGuestMemory(join(dataDir, "ram"), RAM);
    // Device 0x10: the guest's stage 1 maps IOVA; device 0x11: STE V = 0, every access C_BAD_STE.
    const tables = new GuestTables(ram, 0x10_0000);
    tables.map(IOVA - (IOVA % 4096), 0x0345_6000);
    tables.map(DMA_IOVA, 0x0123_4000);
    tables.writeCd(0x8000, 1);
    await attachWithSte(h, name, { streamId: 0x10, virtualStreamId: 0x10, config: 5, contextPtr: 0x8000 });
    await attachInvalidSte(h, name, 0x11);
  });
  after(async () => {
    ram.close();
    await h.stop();
    removeDir(h.dataDir);
  });

  it("counts translations by outcome and IOTLB hit or miss, faults by event name, DMAs by outcome", async () => {
    const translate = (streamId: number) =>
      h.call("translate", { name, streamId, iova: BigInt(IOVA), write: false });
    assert.equal((await translate(0x10)).iotlbHit, false, "first: walked");
    assert.equal((await translate(0x10)).iotlbHit, true, "second: from the IOTLB");
    const fault = await translate(0x11);
    assert.deepEqual(
      [fault.outcome, fault.event?.idName],
      [TranslationOutcome.TRANSLATION_OUTCOME_FAULT, "C_BAD_STE"],
    );
    await h.call("dmaRead", { name, streamId: 0x10, iova: BigInt(IOVA), length: 16 });

    const text = await scrape();
    const translations = (labels: Record<string, string>) =>
      sampleValue(text, "vplane_iommu_translations_total", labels);
    assert.equal(translations({ outcome: "translated", iotlb: "miss" }), 1);
    // The second Translate and the DMA's page walk were served from the IOTLB.
    assert.equal(translations({ outcome: "translated", iotlb: "hit" }), 2);
    assert.equal(translations({ outcome: "fault" }), 1);
    assert.equal(sampleValue(text, "vplane_iommu_faults_total", { event: "C_BAD_STE" }), 1);
    assert.equal(
      sampleValue(text, "vplane_iommu_dmas_total", { direction: "read", outcome: "completed" }),
      1,
    );
    const translateRpc = {
      grpc_service: "vplane.iommu.v1.IommuService",
      grpc_method: "Translate",
      grpc_code: "OK",
    };
    assert.equal(sampleValue(text, "grpc_server_handled_total", translateRpc), 3);
  });

  it("counts each page walk of DmaRead and DmaWrite under vplane_iommu_translations_total, as Translate's", async () => {
    const before = await scrape();
    await h.call("dmaWrite", { name, streamId: 0x10, iova: BigInt(DMA_IOVA), data: Buffer.alloc(16, 7) }); // walked
    await h.call("dmaRead", { name, streamId: 0x10, iova: BigInt(DMA_IOVA), length: 16 }); // from the IOTLB
    await h.call("dmaRead", { name, streamId: 0x11, iova: BigInt(DMA_IOVA), length: 16 }); // C_BAD_STE
    const after = await scrape();
    const added = (labels: Record<string, string>) =>
      sampleValue(after, "vplane_iommu_translations_total", labels) -
      sampleValue(before, "vplane_iommu_translations_total", labels);
    assert.deepEqual(
      [
        added({ outcome: "translated", iotlb: "miss" }),
        added({ outcome: "translated", iotlb: "hit" }),
        added({ outcome: "fault" }),
      ],
      [1, 1, 1],
    );
  });

  it("counts the events a subscriber lost to the buffer's wrap and its backlog after each delivery", async () => {
    const log = h.registry.find(name)!.backend.log;
    const start = log.nextSequence;
    const before = await scrape();
    const faultsBefore = sampleValue(before, "vplane_iommu_faults_total", { event: "C_BAD_STE" });
    // 4106 faults: 10 more than the 4096-message buffer holds.
    for (let i = 0; i < 4096 + 10; i++) h.registry.find(name)!.backend.translate(0x11, undefined, 0n, false);
    const stream = collect(h.client, { name, fromSequence: start });
    const [lost] = await stream.next(1);
    assert.equal(lost?.kind?.$case, "lost");
    await stream.next(4097);
    stream.cancel();

    const text = await scrape();
    assert.equal(sampleValue(text, "vplane_iommu_faults_total", { event: "C_BAD_STE" }) - faultsBefore, 4106);
    assert.equal(sampleValue(text, "vplane_iommu_event_stream_lost_events_total"), 10);
    // StreamEvents delivers one message at a time: the backlog fell from 4095 to 0 over 4097 sends.
    assert.equal(sampleValue(text, "vplane_iommu_event_stream_lag_events_count"), 4097);
    assert.equal(sampleValue(text, "vplane_iommu_event_stream_lag_events_bucket", { le: "0" }), 1);
  });
});

describe("IommuMetrics", () => {
  it("counts page requests and event-queue overflows apart from faults", async () => {
    const registry = new ServiceMetrics();
    const metrics = new IommuMetrics(registry);
    metrics.logged({ kind: "page-request", sequence: 0n, request: {} as PageRequest });
    metrics.logged({ kind: "queue-overflow", sequence: 1n });
    metrics.logged({ kind: "queue-overflow", sequence: 2n });
    const text = await registry.exposition();
    assert.equal(sampleValue(text, "vplane_iommu_page_requests_total"), 1);
    assert.equal(sampleValue(text, "vplane_iommu_event_queue_overflows_total"), 2);
    assert.equal(sampleValue(text, "vplane_iommu_faults_total"), 0);
  });
});
