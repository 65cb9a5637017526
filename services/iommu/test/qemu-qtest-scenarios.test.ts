import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FileGuestMemory } from "@vplane/guest-memory";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { TranslationOutcome } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { GuestTables, steWords } from "../src/testing/guest-tables.js";
import { attachWithSte } from "./smmu-fixture.js";
import { removeDir, startIommu, type IommuHarness } from "./iommu-harness.js";

/**
 * QEMU's tests/qtest/iommu-smmuv3-test.c cases (digest §5.2), through the gRPC API: a device
 * DMAs a pattern at an IOVA and the bytes must land at the leaf PTE's address + (iova & 0xfff)
 * in the VM's shared RAM file. Stage 2 belongs to the host here, so "stage-1 only" is the
 * guest's stage 1 over the identity stage 2 a VMM maps for guest RAM.
 */
const RAM = 256 * 1024 * 1024;
const IOVA = 0x8080_1234;
const PATTERN = Buffer.from("vplane-smmuv3-qtest-pattern");

describe("QEMU iommu-smmuv3-test scenarios (digest §5.2) through gRPC", () => {
  let h: IommuHarness;
  let ram: FileGuestMemory;
  const name = "vms/qtest/smmus/smmu0";

  before(async () => {
    h = await startIommu();
    await h.call("createSmmu", {
      smmu: {
        name: "",
        vm: "qtest",
        smmuId: "smmu0",
        backend: Backend.BACKEND_EMULATED,
        features: undefined,
        guestMemory: { path: "guest-ram", sizeBytes: BigInt(RAM) },
        vmid: 0,
        createTime: undefined,
        stage2GranuleBytes: 0,
        eventQueueDepth: 0,
        pageRequestTimeoutMs: 0,
      },
      requestId: "",
    });
    ram = new FileGuestMemory(join(h.dataDir, "guest-ram"), RAM);
  });

  after(async () => {
    ram.close();
    await h.stop();
    removeDir(h.dataDir);
  });

  async function dmaAndCheck(streamId: number, expected: number): Promise<void> {
    const w = await h.call("dmaWrite", { name, streamId, iova: BigInt(IOVA), data: PATTERN });
    assert.equal(
      w.outcome,
      TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED,
      JSON.stringify(w.stoppedAt?.event),
    );
    assert.deepEqual(Buffer.from(ram.read(expected, PATTERN.length)), PATTERN);
    const r = await h.call("dmaRead", { name, streamId, iova: BigInt(IOVA), length: PATTERN.length });
    assert.deepEqual(r.data, PATTERN);
  }

  it("ns-s1-only: guest stage 1 over identity stage 2; DMA lands at the L3 PTE value + offset", async () => {
    await h.call("mapStage2", {
      name,
      mapping: {
        ipa: 0n,
        hostAddress: 0n,
        size: BigInt(RAM / 2),
        permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
      },
      requestId: "",
    });
    const tables = new GuestTables(ram, 0x10_0000);
    const leaf = tables.map(IOVA - (IOVA % 4096), 0x0345_6000);
    tables.writeCd(0x8000, 1);
    await attachWithSte(h, name, { streamId: 0x10, virtualStreamId: 0x10, config: 5, contextPtr: 0x8000 });
    await dmaAndCheck(0x10, tables.leafOutput(leaf) + (IOVA & 0xfff));
  });

  it("ns-s2-only: stage 1 bypassed; DMA lands at the stage-2 leaf's output + offset", async () => {
    // IPA window [256 MiB - 64 MiB...) is not RAM-identity: map IOVA's 2 MiB onto host 0x0a00_0000.
    await h.call("mapStage2", {
      name,
      mapping: {
        ipa: 0x8080_0000n,
        hostAddress: 0x0a00_0000n,
        size: 0x20_0000n,
        permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
      },
      requestId: "",
    });
    await h.call("attachDevice", {
      name,
      streamId: 0x20,
      virtualStreamId: 0x20,
      pageRequests: false,
      requestId: "",
    });
    await h.call("attachPasidTable", {
      name,
      form: { $case: "guestSte", value: { streamId: 0x20, ...steWords(4), flags: 0 } },
      requestId: "",
    });
    await dmaAndCheck(0x20, 0x0a00_0000 + (IOVA - 0x8080_0000));
  });

  it("ns-nested: the CD and every table address go through stage 2; DMA lands at S2(L3 PTE) + offset", async () => {
    // Guest IPA [0x4000_0000, +16 MiB) lives at host 0x0c00_0000: tables, CD and data all there.
    const base = 0x4000_0000;
    const host = 0x0c00_0000;
    await h.call("mapStage2", {
      name,
      mapping: {
        ipa: BigInt(base),
        hostAddress: BigInt(host),
        size: 0x100_0000n,
        permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
      },
      requestId: "",
    });
    const tables = new GuestTables(ram, base + 0x10_0000, (ipa) => ipa - base + host);
    const leaf = tables.map(IOVA - (IOVA % 4096), base + 0x80_3000);
    tables.writeCd(base + 0x8000, 2);
    await attachWithSte(h, name, {
      streamId: 0x30,
      virtualStreamId: 0x30,
      config: 5,
      contextPtr: base + 0x8000,
    });
    const leafIpa = tables.leafOutput(leaf);
    assert.equal(leafIpa, base + 0x80_3000);
    await dmaAndCheck(0x30, leafIpa - base + host + (IOVA & 0xfff));
    const t = await h.call("translate", { name, streamId: 0x30, iova: BigInt(IOVA), write: false });
    assert.equal(t.iotlbHit, true);
    assert.equal(t.address, BigInt(leafIpa - base + host + (IOVA & 0xfff)));
  });
});
