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
import { steWords } from "../src/testing/guest-tables.js";
import { smmuSpec } from "./smmu-fixture.js";

describe("an SMMU configuration call whose store write fails is undone: UNAVAILABLE, the SMMU as it was", () => {
  const dataDir = tempDataDir();
  const failing = failingWrites(openStore("sqlite::memory:"));
  /** The service's registry over the store: a second one is the service restarted. */
  const openRegistry = () =>
    new SmmuRegistry(failing.store, {
      dataDir,
      maxSmmus: 4,
      log: createLogger({ name: "test", level: "silent" }),
    });
  const registry = openRegistry();
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

  // The calls that replace one setting by another: each undo sets again what the call replaced.
  /** Seed ATTACH_PASID_TABLE with config 1 translate, 2 bypass or 3 abort (digest §1.2). */
  const seed = (pasidConfig: number, requestId: string) =>
    config.attachPasidTable({
      name,
      form: {
        $case: "seed",
        value: {
          version: 1,
          format: 1,
          basePtr: 0x8000n,
          pasidBits: 0,
          config: pasidConfig,
          smmuv3Version: 1,
          s1fmt: 0,
          s1dss: 0,
        },
      },
      requestId,
    });
  /** The seed stage 1 in the SMMU and in the durable record: [its kind, the record's config]. */
  const seedStage1 = (r = registry) => {
    const e = r.require(name);
    return [e.backend.dump().pasidTable?.kind, e.pasidTable?.config];
  };

  it("AttachPasidTable (seed): what it replaced is attached again (none, then bypass); the retry attaches", async () => {
    await unavailable(() => seed(2, "p-1"));
    assert.deepEqual(seedStage1(), [undefined, undefined]);
    await seed(2, "p-1");
    await unavailable(() => seed(3, "p-2"));
    assert.deepEqual(seedStage1(), ["bypass", 2]);
  });

  it("DetachPasidTable (seed): the table is attached again; the retry detaches", async () => {
    await unavailable(() => config.detachPasidTable({ name, requestId: "pd-1" }));
    assert.deepEqual(seedStage1(), ["bypass", 2]);
    await config.detachPasidTable({ name, requestId: "pd-1" });
    assert.deepEqual(seedStage1(), [undefined, undefined]);
  });

  /** Installs guest STE words of Config `steConfig` on device 0x10 (iommufd form, digest §2.1). */
  const guestSte = (steConfig: number, requestId: string) =>
    config.attachPasidTable({
      name,
      form: { $case: "guestSte", value: { streamId: 0x10, ...steWords(steConfig), flags: 0 } },
      requestId,
    });
  /** Device 0x10's guest STE Config in the SMMU and in its durable record. */
  const steConfigOf = () => {
    const e = registry.require(name);
    const installed = e.backend.devices().find((d) => d.streamId === 0x10)!.guestSte;
    const record = e.devices.get(0x10)!.guestSte;
    return [
      installed && Number((installed.words[0] >> 1n) & 7n),
      record && Number((BigInt(record.ste0) >> 1n) & 7n),
    ];
  };

  it("AttachPasidTable (guest STE): the STE it replaced is set again (none: cleared, then Config 5)", async () => {
    await config.attachDevice({
      name,
      streamId: 0x10,
      virtualStreamId: 1,
      pageRequests: false,
      requestId: "",
    });
    await unavailable(() => guestSte(5, "g-1"));
    assert.deepEqual(steConfigOf(), [undefined, undefined]);
    await guestSte(5, "g-1");
    await unavailable(() => guestSte(4, "g-2"));
    assert.deepEqual(steConfigOf(), [5, 5]);
  });

  it("DetachPasidTable (guest STE): the STE is set again; the retry clears it", async () => {
    await unavailable(() => config.detachPasidTable({ name, streamId: 0x10, requestId: "gd-1" }));
    assert.deepEqual(steConfigOf(), [5, 5]);
    await config.detachPasidTable({ name, streamId: 0x10, requestId: "gd-1" });
    assert.deepEqual(steConfigOf(), [undefined, undefined]);
  });

  /** The MSI doorbell IOVA bound in the SMMU and in the durable record. */
  const msiIova = (r = registry) => {
    const e = r.require(name);
    return [e.backend.dump().msiBinding?.giova, e.msi?.iova];
  };

  const bind = (requestId = "b-1") =>
    config.bindMsi({ name, binding: { iova: 0x800_0000n, gpa: 0x4000_0000n, size: 0x1000n }, requestId });

  it("BindMsi: unbound again, UnbindMsi: bound again; their retries bind and unbind", async () => {
    await unavailable(() => bind());
    assert.deepEqual(msiIova(), [undefined, undefined]);
    await bind();
    await unavailable(() => config.unbindMsi({ name, iova: 0x800_0000n, requestId: "ub-1" }));
    assert.deepEqual(msiIova(), [0x800_0000, 0x800_0000]);
    assert.equal((await config.unbindMsi({ name, iova: 0x800_0000n, requestId: "ub-1" })).unbound, true);
    assert.deepEqual(msiIova(), [undefined, undefined]);
  });

  it("after a restart, the undos set back what the restart replayed (the entry keeps the records it loads)", async () => {
    await seed(2, "");
    await bind("");
    registry.closeAll();
    const restarted = openRegistry();
    await restarted.load();
    const calls = smmuConfigHandlers(restarted);
    await unavailable(() => calls.detachPasidTable({ name, requestId: "" }));
    await unavailable(() => calls.unbindMsi({ name, iova: 0x800_0000n, requestId: "" }));
    assert.deepEqual(
      [seedStage1(restarted), msiIova(restarted)],
      [
        ["bypass", 2],
        [0x800_0000, 0x800_0000],
      ],
    );
    restarted.closeAll();
  });
});
