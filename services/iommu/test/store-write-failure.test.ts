// Never a half-applied change: a configuration call whose store write fails (an etcd without
// quorum, a SQLite file locked too long) answers UNAVAILABLE STORE_UNAVAILABLE and leaves the SMMU
// as it was, so that what it does matches what a restart would rebuild; its retry applies again.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { createLogger, type VplaneError } from "@vplane/service-kit";
import { failingWrites } from "@vplane/service-kit/testing";
import { openStore } from "@vplane/store";
import { smmuConfigHandlers } from "../src/smmu-config-handlers.js";
import { smmuCrudHandlers } from "../src/smmu-crud-handlers.js";
import { SmmuRegistry } from "../src/smmu-registry.js";
import { removeDir, tempDataDir } from "./iommu-harness.js";
import { smmuSpec } from "./smmu-fixture.js";

describe("an SMMU configuration call whose store write fails is undone: UNAVAILABLE, the SMMU as it was", () => {
  const dataDir = tempDataDir();
  const failing = failingWrites(openStore("sqlite::memory:"));
  const registry = new SmmuRegistry(failing.store, {
    dataDir,
    maxSmmus: 4,
    log: createLogger({ name: "test", level: "silent" }),
  });
  const crud = smmuCrudHandlers(registry, dataDir);
  const config = smmuConfigHandlers(registry);
  let name: string;
  const unavailable = async (call: () => Promise<unknown>) => {
    failing.failNext();
    const refused = (await call().then(
      () => assert.fail("the call succeeded"),
      (e: unknown) => e,
    )) as VplaneError;
    assert.deepEqual([refused.code, refused.reason], ["UNAVAILABLE", "STORE_UNAVAILABLE"]);
  };

  before(async () => {
    name = (await crud.createSmmu({ smmu: smmuSpec("undo", "smmu0"), requestId: "" })).smmu!.name;
  });
  after(async () => {
    registry.closeAll();
    await failing.store.close();
    removeDir(dataDir);
  });

  it("MapStage2: the range is unmapped again; the retry maps it", async () => {
    const map = () =>
      config.mapStage2({
        name,
        mapping: {
          ipa: 0x10_0000n,
          hostAddress: 0n,
          size: 0x1_0000n,
          permission: Stage2Permission.STAGE2_PERMISSION_READ,
        },
        requestId: "m-1",
      });
    await unavailable(map);
    assert.deepEqual(registry.require(name).backend.mappings(), []);
    await map();
    assert.deepEqual(
      registry
        .require(name)
        .backend.mappings()
        .map((m) => m.ipa),
      [0x10_0000],
    );
  });

  it("AttachDevice: the StreamID is unbound again (no DEVICE_ALREADY_BOUND on the retry)", async () => {
    const attach = () =>
      config.attachDevice({
        name,
        streamId: 0x10,
        virtualStreamId: 1,
        pageRequests: false,
        requestId: "a-1",
      });
    await unavailable(attach);
    assert.equal(registry.require(name).devices.has(0x10), false);
    assert.equal((await attach()).device!.streamId, 0x10);
    assert.equal(registry.require(name).devices.has(0x10), true);
  });

  // The tests run in order: each starts from what the one before left (a mapping, a device).
  it("UnmapStage2: the mappings it removed are mapped again", async () => {
    await unavailable(() => config.unmapStage2({ name, ipa: 0x10_0000n, size: 0x1_0000n, requestId: "u-1" }));
    assert.deepEqual(
      registry
        .require(name)
        .backend.mappings()
        .map((m) => [m.ipa, m.size]),
      [[0x10_0000, 0x1_0000]],
    );
  });

  it("DetachDevice: the StreamID is bound again as it was; the retry detaches it", async () => {
    await unavailable(() => config.detachDevice({ name, streamId: 0x10, requestId: "d-1" }));
    assert.deepEqual(registry.require(name).devices.get(0x10), {
      streamId: 0x10,
      virtualStreamId: 1,
      pageRequests: false,
    });
    assert.deepEqual(
      registry
        .require(name)
        .backend.devices()
        .map((d) => [d.streamId, d.virtualStreamId]),
      [[0x10, 1]],
    );
    await config.detachDevice({ name, streamId: 0x10, requestId: "d-1" });
    assert.equal(registry.require(name).devices.has(0x10), false);
  });
});
