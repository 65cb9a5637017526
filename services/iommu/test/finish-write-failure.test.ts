// A live migration's finish resumes the VM's SMMUs before it writes them (issue 14: the write is
// out of the downtime), and FinishImport answers only once that write is durable. A write that
// fails after the resume: the answer is the failure (the source keeps the VM), the SMMUs ran here
// meanwhile, and their records are still preparing, so a restart drops them and the release a
// failed migration makes leaves nothing behind.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { finishWriteHosts } from "@vplane/service-kit/testing";
import { smmuConfigHandlers } from "../src/smmu-config-handlers.js";
import { smmuCrudHandlers } from "../src/smmu-crud-handlers.js";
import { SmmuRegistry } from "../src/smmu-registry.js";
import { smmuVmDevices } from "../src/smmu-vm-devices.js";
import { smmuSpec } from "./smmu-fixture.js";

const RAM = 64n * 1024n * 1024n;

describe("an SMMU finish whose write fails after the resume: the failure answered, nothing left", () => {
  const hosts = finishWriteHosts(
    "iommu",
    (store, options) => new SmmuRegistry(store, { ...options, maxSmmus: 8 }),
    smmuVmDevices,
  );

  /** Two SMMUs of `vm` resumed on the destination from the source's iteration 0 and stop, their write failed. */
  async function finishFailing(vm: string) {
    const { source, dataDir, src, dst } = hosts;
    const guestMemory = { path: `${vm}.ram`, sizeBytes: RAM };
    const names: string[] = [];
    for (const smmuId of ["s0", "s1"]) {
      const created = await smmuCrudHandlers(source, dataDir).createSmmu({
        smmu: smmuSpec(vm, smmuId, { guestMemory }),
        requestId: "",
      });
      names.push(created.smmu!.name);
    }
    const fields = { vm, guestMemory, backend: Backend.BACKEND_UNSPECIFIED };
    await dst.prepareImport({ ...fields, sections: src.readPreCopy(vm, 0) }, 0);
    // After the last iteration: a mapping, so that the stop carries a delta.
    await smmuConfigHandlers(source).mapStage2({
      name: names[0]!,
      mapping: {
        ipa: 0n,
        hostAddress: 0n,
        size: 0x1_0000n,
        permission: Stage2Permission.STAGE2_PERMISSION_READ,
      },
      requestId: "",
    });
    const stop = src.stopAndCopy(vm, "destination:1");
    assert.ok(stop.sections.length > 0, "the stop moves a delta");
    await hosts.finishFailing({ ...fields, sections: stop.sections });
    const smmus = hosts.destination.requireVm(vm);
    assert.equal(smmus.length, 2);
    for (const smmu of smmus) assert.equal(smmu.backend.quiesced, false, "the SMMUs ran here meanwhile");
  }

  hosts.cases(finishFailing);
});
