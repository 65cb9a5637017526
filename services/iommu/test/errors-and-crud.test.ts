import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { buildCommand } from "@vplane/smmuv3";
import { probeNativeSmmu } from "../src/native-probe.js";
import { steWords } from "../src/testing/guest-tables.js";
import { removeDir, startIommu, type IommuHarness } from "./iommu-harness.js";
import { createSmmu, smmuSpec } from "./smmu-fixture.js";

/** DESIGN API conventions: gRPC code + reason + the errno the kernel returns, in the status details. */
describe("errors carry the gRPC code, reason and errno (DESIGN API conventions)", () => {
  let h: IommuHarness;
  let name: string;

  before(async () => {
    h = await startIommu();
    name = await createSmmu(h, "vm1", "smmu0", { mapped: 0x100_0000 });
  });
  after(async () => {
    await h.stop();
    removeDir(h.dataDir);
  });

  it("stage-2 map: unaligned → INVALID_ARGUMENT EINVAL; overlap → ALREADY_EXISTS EEXIST; unbacked → EFAULT", async () => {
    const map = (ipa: bigint, hostAddress: bigint, size: bigint) =>
      h.failure("mapStage2", {
        name,
        mapping: { ipa, hostAddress, size, permission: Stage2Permission.STAGE2_PERMISSION_READ },
        requestId: "",
      });
    let e = await map(0x1_0000_0800n, 0n, 0x1000n);
    assert.deepEqual([e.code, e.reason, e.errno, e.field], ["INVALID_ARGUMENT", "NOT_ALIGNED", 22, "ipa"]);
    e = await map(0x1000n, 0n, 0x1000n);
    assert.deepEqual([e.code, e.errno], ["ALREADY_EXISTS", 17]);
    e = await map(0x1_0000_0000n, 0x400_0000n, 0x1000n);
    assert.deepEqual([e.reason, e.errno], ["HOST_RANGE_NOT_BACKED", 14]);
  });

  it("vdevice: a second binding of the device or of the vSID → ALREADY_EXISTS EEXIST", async () => {
    await h.call("attachDevice", {
      name,
      streamId: 1,
      virtualStreamId: 0x99,
      pageRequests: false,
      requestId: "",
    });
    let e = await h.failure("attachDevice", {
      name,
      streamId: 1,
      virtualStreamId: 0x98,
      pageRequests: false,
      requestId: "",
    });
    assert.deepEqual([e.code, e.reason, e.errno], ["ALREADY_EXISTS", "DEVICE_ALREADY_BOUND", 17]);
    e = await h.failure("attachDevice", {
      name,
      streamId: 2,
      virtualStreamId: 0x99,
      pageRequests: false,
      requestId: "",
    });
    assert.deepEqual([e.reason, e.errno], ["VIRTUAL_SID_TAKEN", 17]);
    e = await h.failure("detachDevice", { name, streamId: 7, requestId: "" });
    assert.deepEqual([e.code, e.errno], ["NOT_FOUND", 2]);
  });

  it("guest STE: a bit outside the nesting mask → EIO; Config 6 → EIO; unknown device → ENOENT", async () => {
    const attach = (streamId: number, ste0: bigint, flags = 0) =>
      h.failure("attachPasidTable", {
        name,
        form: { $case: "guestSte", value: { streamId, ste0, ste1: 0n, flags } },
        requestId: "",
      });
    let e = await attach(1, steWords(5).ste0 | (1n << 52n));
    assert.deepEqual([e.code, e.reason, e.errno], ["INVALID_ARGUMENT", "STE_FIELD_NOT_ALLOWED", 5]);
    e = await attach(1, steWords(6).ste0);
    assert.equal(e.errno, 5);
    e = await attach(9, steWords(5).ste0);
    assert.deepEqual([e.code, e.errno], ["NOT_FOUND", 2]);
    e = await attach(1, steWords(5).ste0, 1);
    assert.equal(e.errno, 95);
  });

  it("seed PASID table: pasid_bits != 0 → EINVAL; TRANSLATE twice → EINVAL", async () => {
    const seed = (pasidBits: number) => ({
      name,
      form: {
        $case: "seed" as const,
        value: {
          version: 1,
          format: 1,
          basePtr: 0x8000n,
          pasidBits,
          config: 1,
          smmuv3Version: 1,
          s1fmt: 0,
          s1dss: 0,
        },
      },
      requestId: "",
    });
    const other = await createSmmu(h, "vm1", "seedform");
    const e = await h.failure("attachPasidTable", { ...seed(2), name: other });
    assert.deepEqual([e.reason, e.errno], ["PASID_BITS_UNSUPPORTED", 22]);
    await h.call("attachPasidTable", { ...seed(0), name: other });
    const again = await h.failure("attachPasidTable", { ...seed(0), name: other });
    assert.deepEqual([again.reason, again.errno], ["STAGE1_ALREADY_SET", 22]);
  });

  it("invalidation batch: second entry bad → error with batch_index 1 and EIO; the first stays applied", async () => {
    const raw = (cmd: readonly [bigint, bigint]) => ({
      entry: { $case: "raw" as const, value: { cmd0: cmd[0], cmd1: cmd[1] } },
    });
    const e = await h.failure("invalidate", {
      name,
      entries: [raw(buildCommand.nhAll()), raw(buildCommand.sync()), raw(buildCommand.nhAll())],
      requestId: "",
    });
    assert.deepEqual(
      [e.code, e.reason, e.errno, e.batchIndex],
      ["INVALID_ARGUMENT", "COMMAND_NOT_ALLOWED", 5, 1],
    );
    const ok = await h.call("invalidate", {
      name,
      entries: [raw(buildCommand.nhAsid(1)), raw(buildCommand.cfgiCd(0x99, 0))],
      requestId: "",
    });
    assert.equal(ok.handled, 2);
    const structured = await h.failure("invalidate", {
      name,
      entries: [
        {
          entry: {
            $case: "structured",
            value: {
              version: 1,
              cache: 2,
              granularity: 0,
              flags: 0,
              archid: 0,
              pasid: 0n,
              addr: 0n,
              granuleSize: 0n,
              nbGranules: 0n,
            },
          },
        },
      ],
      requestId: "",
    });
    assert.deepEqual([structured.errno, structured.batchIndex], [22, 0]);
  });

  it("page response: unknown cookie or code 3 → EINVAL", async () => {
    const e = await h.failure("respondPageRequest", { name, cookie: 1234, code: 0, requestId: "" });
    assert.deepEqual([e.reason, e.errno], ["PAGE_REQUEST_NOT_FOUND", 22]);
    assert.equal(
      (await h.failure("respondPageRequest", { name, cookie: 1234, code: 3, requestId: "" })).errno,
      22,
    );
  });

  it("MSI: a second doorbell → FAILED_PRECONDITION EBUSY; limits: DMA over 1 MiB → INVALID_ARGUMENT", async () => {
    await h.call("bindMsi", {
      name,
      binding: { iova: 0xfee0_0000n, gpa: 0x0800_0000n, size: 0x1000n },
      requestId: "",
    });
    const e = await h.failure("bindMsi", {
      name,
      binding: { iova: 0xfef0_0000n, gpa: 0x0800_0000n, size: 0x1000n },
      requestId: "",
    });
    assert.deepEqual([e.code, e.errno], ["FAILED_PRECONDITION", 16]);
    const big = await h.failure("dmaRead", { name, streamId: 1, iova: 0n, length: 2 * 1024 * 1024 });
    assert.equal(big.reason, "DMA_LENGTH_INVALID");
  });

  it("NATIVE creation fails FAILED_PRECONDITION with the host probe's reason", async () => {
    const e = await h.failure("createSmmu", {
      smmu: smmuSpec("vm2", "native", { backend: Backend.BACKEND_NATIVE }),
      requestId: "",
    });
    assert.equal(e.code, "FAILED_PRECONDITION");
    assert.equal(e.reason, probeNativeSmmu().unavailableCode);
  });

  // An enum value this build does not know (a newer client's backend) is refused, not taken as
  // EMULATED: as the interrupt controller's CreateController and both ImportDeviceState do.
  it("an unknown backend is INVALID_ARGUMENT BACKEND_INVALID on smmu.backend, and nothing is created", async () => {
    const e = await h.failure("createSmmu", {
      smmu: smmuSpec("vm2", "unknown", { backend: 7 as Backend }),
      requestId: "",
    });
    assert.deepEqual([e.code, e.reason, e.field], ["INVALID_ARGUMENT", "BACKEND_INVALID", "smmu.backend"]);
    assert.equal((await h.failure("getSmmu", { name: "vms/vm2/smmus/unknown" })).code, "NOT_FOUND");
  });
});

describe("SMMU create / get / list / delete", () => {
  let h: IommuHarness;
  before(async () => {
    h = await startIommu();
  });
  after(async () => {
    await h.stop();
    removeDir(h.dataDir);
  });

  it("names, defaults, VMIDs, ALREADY_EXISTS unless the request_id repeats, paging, NOT_FOUND after delete", async () => {
    const first = await h.call("createSmmu", { smmu: smmuSpec("vm-a", "s0"), requestId: "req-1" });
    assert.equal(first.smmu?.name, "vms/vm-a/smmus/s0");
    assert.deepEqual(first.smmu?.features?.granules, [4096, 16384, 65536]);
    assert.equal(first.smmu?.features?.sidBits, 16);
    const retry = await h.call("createSmmu", { smmu: smmuSpec("vm-a", "s0"), requestId: "req-1" });
    assert.equal(retry.smmu?.vmid, first.smmu?.vmid);
    const dup = await h.failure("createSmmu", { smmu: smmuSpec("vm-a", "s0"), requestId: "req-2" });
    assert.equal(dup.code, "ALREADY_EXISTS");
    for (const id of ["s1", "s2"]) await h.call("createSmmu", { smmu: smmuSpec("vm-a", id), requestId: "" });
    await h.call("createSmmu", { smmu: smmuSpec("vm-b", "s0"), requestId: "" });
    const page1 = await h.call("listSmmus", { parent: "vms/vm-a", pageSize: 2, pageToken: "" });
    assert.deepEqual(
      page1.smmus.map((s) => s.smmuId),
      ["s0", "s1"],
    );
    const page2 = await h.call("listSmmus", {
      parent: "vms/vm-a",
      pageSize: 2,
      pageToken: page1.nextPageToken,
    });
    assert.deepEqual(
      page2.smmus.map((s) => s.smmuId),
      ["s2"],
    );
    assert.equal(page2.nextPageToken, "");
    const vmids = new Set(
      (await h.call("listSmmus", { parent: "", pageSize: 0, pageToken: "" })).smmus.map((s) => s.vmid),
    );
    assert.equal(vmids.size, 4);
    assert.equal(
      (await h.failure("createSmmu", { smmu: smmuSpec("Bad_Id", "s0"), requestId: "" })).reason,
      "ID_INVALID",
    );
    const oas = await h.failure("createSmmu", {
      smmu: smmuSpec("vm-c", "s0", {
        features: {
          sidBits: 0,
          ssidBits: 0,
          granules: [],
          oasBits: 52,
          asid16: true,
          vmid16: true,
          rangeInvalidation: true,
          pri: true,
        },
      }),
      requestId: "",
    });
    assert.equal(oas.code, "INVALID_ARGUMENT");
    await h.call("deleteSmmu", { name: "vms/vm-a/smmus/s1", requestId: "del-1" });
    await h.call("deleteSmmu", { name: "vms/vm-a/smmus/s1", requestId: "del-1" });
    assert.equal((await h.failure("getSmmu", { name: "vms/vm-a/smmus/s1" })).code, "NOT_FOUND");
    assert.equal((await h.failure("getSmmu", { name: "vm-a/s1" })).code, "INVALID_ARGUMENT");
  });
});
