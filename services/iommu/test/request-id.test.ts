// The request_id rule (issue 11 point 2, DESIGN: every mutating call is idempotent under its
// request_id): a retry gets the first answer, never a second effect; the same id with another
// method or another message is refused (the service used to run such a call again and keep its
// answer instead); the answer of a durable call survives a restart.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { removeDir, startIommu, tempDataDir } from "./iommu-harness.js";
import { createSmmu } from "./smmu-fixture.js";

const mapping = (ipa: bigint) => ({
  ipa,
  hostAddress: ipa,
  size: 0x10_0000n,
  permission: Stage2Permission.STAGE2_PERMISSION_READ,
});

describe("request_id through gRPC (RequestLedger)", () => {
  it("a request_id reused by another method or another message is INVALID_ARGUMENT REQUEST_ID_REUSED, and changes nothing", async () => {
    const h = await startIommu();
    try {
      const name = await createSmmu(h, "vm-r", "smmu0");
      await h.call("mapStage2", { name, mapping: mapping(0x100_0000n), requestId: "r-1" });
      const retry = await h.call("mapStage2", { name, mapping: mapping(0x100_0000n), requestId: "r-1" });
      assert.deepEqual(retry, {});

      const otherMethod = await h.failure("attachDevice", {
        name,
        streamId: 0x10,
        virtualStreamId: 0x1,
        pageRequests: false,
        requestId: "r-1",
      });
      assert.deepEqual(
        [otherMethod.code, otherMethod.reason, otherMethod.field],
        ["INVALID_ARGUMENT", "REQUEST_ID_REUSED", "request_id"],
      );
      const otherMessage = await h.failure("mapStage2", {
        name,
        mapping: mapping(0x200_0000n),
        requestId: "r-1",
      });
      assert.equal(otherMessage.reason, "REQUEST_ID_REUSED");
      // Runtime-only calls (answers kept in memory) follow the same rule.
      const invalidate = await h.failure("invalidate", { name, entries: [], requestId: "r-1" });
      assert.equal(invalidate.reason, "REQUEST_ID_REUSED");

      const dump = JSON.parse((await h.call("dumpSmmu", { name })).text) as {
        devices: unknown[];
        stage2: { mappings: { ipa: number }[] };
      };
      assert.deepEqual(dump.devices, []);
      assert.deepEqual(
        dump.stage2.mappings.map((m) => m.ipa),
        [0x100_0000],
      );
    } finally {
      await h.stop();
      removeDir(h.dataDir);
    }
  });

  it("a durable call's answer survives a restart: its retry answers as the first time did", async () => {
    const dataDir = tempDataDir();
    let h = await startIommu(dataDir);
    try {
      const name = await createSmmu(h, "vm-d", "smmu0");
      const attach = { name, streamId: 0x10, virtualStreamId: 0x1, pageRequests: false, requestId: "a-1" };
      const attached = await h.call("attachDevice", attach);
      await h.stop();

      h = await startIommu(dataDir);
      assert.deepEqual(await h.call("attachDevice", attach), attached);
      const reused = await h.failure("mapStage2", { name, mapping: mapping(0x100_0000n), requestId: "a-1" });
      assert.equal(reused.reason, "REQUEST_ID_REUSED");
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });
});
