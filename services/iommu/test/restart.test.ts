import assert from "node:assert/strict";
import { truncateSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FileGuestMemory } from "@vplane/guest-memory";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { TranslationOutcome } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { GuestTables, steWords } from "../src/testing/guest-tables.js";
import { removeDir, startIommu, tempDataDir } from "./iommu-harness.js";
import { attachSeedTable, createSmmu, smmuSpec } from "./smmu-fixture.js";

const RAM = 64 * 1024 * 1024;

describe("acknowledged configuration survives a restart (DESIGN: where state lives)", () => {
  it("mappings, devices, guest STEs, the seed PASID table and the MSI binding are replayed", async () => {
    const dataDir = tempDataDir();
    let h = await startIommu(dataDir);
    const name = await createSmmu(h, "vm1", "smmu0", {
      guestMemory: { path: "ram", sizeBytes: BigInt(RAM) },
      mapped: 0x100_0000,
    });
    const seedName = await createSmmu(h, "vm1", "seed", { mapped: 0x100_0000 });
    await h.call("mapStage2", {
      name,
      mapping: {
        ipa: 0x100_0000n,
        hostAddress: 0x100_0000n,
        size: 0x100_0000n,
        permission: Stage2Permission.STAGE2_PERMISSION_READ,
      },
      requestId: "",
    });
    await h.call("mapStage2", {
      name,
      mapping: {
        ipa: 0x1_0000_0000n,
        hostAddress: 0x300_0000n,
        size: 0x10_0000n,
        permission: Stage2Permission.STAGE2_PERMISSION_READ,
      },
      requestId: "",
    });
    const ram = new FileGuestMemory(join(dataDir, "ram"), RAM);
    const tables = new GuestTables(ram, 0x10_0000);
    tables.map(0x5000_0000, 0x1_0000_0000);
    tables.writeCd(0x8000, 3);
    ram.close();
    await h.call("attachDevice", {
      name,
      streamId: 0x10,
      virtualStreamId: 0x99,
      pageRequests: true,
      requestId: "",
    });
    await h.call("attachDevice", {
      name,
      streamId: 0x11,
      virtualStreamId: 0x98,
      pageRequests: false,
      requestId: "",
    });
    await h.call("attachPasidTable", {
      name,
      form: { $case: "guestSte", value: { streamId: 0x10, ...steWords(5, 0x8000), flags: 0 } },
      requestId: "",
    });
    await h.call("bindMsi", {
      name,
      binding: { iova: 0xfee0_0000n, gpa: 0x0800_0000n, size: 0x1000n },
      requestId: "",
    });
    await h.call("attachDevice", {
      name: seedName,
      streamId: 1,
      virtualStreamId: 1,
      pageRequests: false,
      requestId: "",
    });
    await attachSeedTable(h, seedName, 3);
    await h.call("unmapStage2", { name, ipa: 0x100_0000n, size: 0x100_0000n, requestId: "" });
    const before = await h.call("translate", { name, streamId: 0x10, iova: 0x5000_0123n, write: false });
    const smmuBefore = (await h.call("getSmmu", { name })).smmu;
    await h.stop();

    h = await startIommu(dataDir);
    try {
      assert.deepEqual((await h.call("getSmmu", { name })).smmu, smmuBefore);
      const after = await h.call("translate", { name, streamId: 0x10, iova: 0x5000_0123n, write: false });
      assert.equal(after.outcome, TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED);
      assert.equal(after.address, before.address);
      assert.equal(after.address, 0x300_0123n);
      const write = await h.call("translate", { name, streamId: 0x10, iova: 0x5000_0123n, write: true });
      assert.equal(write.event?.idName, "F_PERMISSION");
      assert.equal(write.event?.stage2, true);
      const dump = JSON.parse((await h.call("dumpSmmu", { name })).text) as {
        devices: { streamId: number; virtualStreamId: number; pageRequests: boolean }[];
        msiBinding: { giova: number };
        stage2: { mappings: { ipa: number }[] };
      };
      assert.deepEqual(
        dump.devices.map((d) => [d.streamId, d.virtualStreamId, d.pageRequests]),
        [
          [0x10, 0x99, true],
          [0x11, 0x98, false],
        ],
      );
      assert.equal(dump.msiBinding.giova, 0xfee0_0000);
      assert.deepEqual(
        dump.stage2.mappings.map((m) => m.ipa),
        [0, 0x1_0000_0000],
      );
      const aborted = await h.call("translate", { name: seedName, streamId: 1, iova: 0n, write: false });
      assert.equal(aborted.outcome, TranslationOutcome.TRANSLATION_OUTCOME_ABORTED);
      // Unmapped before the restart: stays unmapped.
      const gone = await h.call("translate", { name, streamId: 0x11, iova: 0x100_0000n, write: false });
      assert.equal(gone.event?.idName, "F_TRANSLATION");
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });

  it("a stored SMMU that cannot be rebuilt on start answers SMMU_NOT_RESTORED, keeps its name taken and can be deleted", async () => {
    const dataDir = tempDataDir();
    let h = await startIommu(dataDir);
    try {
      const name = await createSmmu(h, "vm1", "lost", {
        guestMemory: { path: "ram", sizeBytes: BigInt(RAM) },
      });
      await h.stop();
      // The VM's RAM file changed size while the service was down: the SMMU cannot be remade.
      truncateSync(join(dataDir, "ram"), 4096);
      h = await startIommu(dataDir);
      for (const e of [
        await h.failure("getSmmu", { name }),
        await h.failure("attachDevice", {
          name,
          streamId: 1,
          virtualStreamId: 1,
          pageRequests: false,
          requestId: "",
        }),
      ]) {
        assert.deepEqual([e.code, e.reason], ["FAILED_PRECONDITION", "SMMU_NOT_RESTORED"]);
        assert.match(e.message, /cannot open guest memory/);
      }
      const again = await h.failure("createSmmu", {
        smmu: smmuSpec("vm1", "lost", { guestMemory: { path: "ram", sizeBytes: BigInt(RAM) } }),
        requestId: "",
      });
      assert.equal(again.code, "ALREADY_EXISTS");
      await h.call("deleteSmmu", { name, requestId: "" });
      assert.equal((await h.failure("getSmmu", { name })).code, "NOT_FOUND");
      await h.stop();
      // Deleted for good: the record left the store, and the name can be used again.
      h = await startIommu(dataDir);
      assert.equal((await h.failure("getSmmu", { name })).code, "NOT_FOUND");
      await createSmmu(h, "vm1", "lost");
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });
});
