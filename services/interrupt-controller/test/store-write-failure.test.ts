// Never a half-applied change: a configuration call whose store write fails (an etcd without
// quorum, a SQLite file locked too long) answers UNAVAILABLE STORE_UNAVAILABLE and leaves the
// controller as it was, so that what it does matches what a restart would rebuild; its retry
// applies and writes again.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLogger, type VplaneError } from "@vplane/service-kit";
import { failingWrites } from "@vplane/service-kit/testing";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { openStore } from "@vplane/store";
import { HcallOpcode, HcallReturn, SourceConfigFlag } from "@vplane/xive";
import { controllerCrudHandlers } from "../src/controller-crud-handlers.js";
import { ControllerRegistry } from "../src/controller-registry.js";
import { deviceHandlers } from "../src/device-handlers.js";
import { QADDR, controllerSpec, kvmConfig } from "./conformance-fixtures.js";
import { failure, removeDir, tempDataDir } from "./service-harness.js";

describe("a configuration call whose store write fails is undone: UNAVAILABLE, the controller as it was", () => {
  const dataDir = tempDataDir();
  const failing = failingWrites(openStore("sqlite::memory:"));
  const registry = new ControllerRegistry(failing.store, {
    dataDir,
    maxControllers: 4,
    log: createLogger({ name: "test", level: "silent" }),
  });
  const crud = controllerCrudHandlers(registry, dataDir);
  const device = deviceHandlers(registry, () => undefined);
  const name = "vms/undo/controller";
  const queue = (server: number, qaddr: bigint) => ({
    name,
    server,
    priority: 6,
    queue: { flags: 1, qshift: 16, qaddr, qtoggle: 1, qindex: 0 },
    requestId: "",
  });
  const dump = () => device.dumpController({ name }).text;
  const unavailable = async (call: Promise<unknown>) => {
    failing.failNext();
    const refused: VplaneError = await failure(call);
    assert.deepEqual([refused.code, refused.reason], ["UNAVAILABLE", "STORE_UNAVAILABLE"]);
  };

  before(async () => {
    await crud.createController({
      controller: controllerSpec("undo", ControllerMode.CONTROLLER_MODE_XIVE),
      requestId: "",
    });
    await device.connectVcpu({ name, vcpuId: 0, server: 0, requestId: "" });
    await device.connectVcpu({ name, vcpuId: 1, server: 1, requestId: "" });
    await device.initSources({
      name,
      sources: [0x1300, 0x1301].map((irq) => ({ irq, levelSensitive: false, asserted: false })),
      requestId: "",
    });
    await device.configureQueue(queue(0, QADDR));
    await device.configureSources({
      name,
      sources: [{ irq: 0x1300, kvmConfig: kvmConfig(0, 6, 0x1300) }],
      requestId: "",
    });
  });
  after(async () => {
    registry.closeAll();
    await failing.store.close();
    removeDir(dataDir);
  });

  it("ConfigureSources: every entry of the batch routes as before, in the model and in the records it writes next", async () => {
    const before = dump();
    await unavailable(
      device.configureSources({
        name,
        sources: [
          { irq: 0x1300, kvmConfig: kvmConfig(0, 6, 0x77) },
          { irq: 0x1301, kvmConfig: kvmConfig(0, 6, 0x1301) },
          { irq: 0x1300, kvmConfig: kvmConfig(0, 6, 0x78) },
        ],
        requestId: "s-1",
      }),
    );
    assert.equal(dump(), before);
    assert.equal(device.getSourceConfig({ name, irq: 0x1300 }).source!.eisn, 0x1300);
    assert.equal(device.getSourceConfig({ name, irq: 0x1301 }).source!.masked, true);

    const retried = await device.configureSources({
      name,
      sources: [{ irq: 0x1301, kvmConfig: kvmConfig(0, 6, 0x1301) }],
      requestId: "s-1b",
    });
    assert.deepEqual(retried.effectiveServers, [0]);
    assert.equal(device.getSourceConfig({ name, irq: 0x1301 }).source!.eisn, 0x1301);
  });

  it("ConfigureQueue: a moved queue is back at its page, a new one is gone again", async () => {
    const before = dump();
    await unavailable(device.configureQueue(queue(0, QADDR + 0x2_0000n)));
    assert.equal(device.getQueueConfig({ name, server: 0, priority: 6 }).queue!.qaddr, QADDR);
    assert.equal(dump(), before);
    await unavailable(device.configureQueue(queue(1, QADDR + 0x1_0000n)));
    assert.equal(device.getQueueConfig({ name, server: 1, priority: 6 }).hasPage, false);
  });

  it("RawHypercall H_INT_SET_SOURCE_CONFIG / H_INT_SET_QUEUE_CONFIG: UNAVAILABLE with H_HARDWARE in the details (QEMU's answer when the device behind a hypercall fails), the model as before; a retry applies", async () => {
    await device.selectMode({ name, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
    const hcall = (opcode: number, args: bigint[]) =>
      device.rawHypercall({ name, server: 0, opcode: BigInt(opcode), args, failOnError: true });
    const sourceConfig = async () =>
      (await hcall(HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n])).outputs;
    const before = { dump: dump(), source: await sourceConfig() };
    const moveSource = [SourceConfigFlag.SET_EISN, 0x1300n, 1n, 6n, 0x99n];
    const fourKQueue = [0n, 0n, 6n, 0x8_0000n, 12n];
    for (const [opcode, args] of [
      [HcallOpcode.H_INT_SET_SOURCE_CONFIG, moveSource],
      [HcallOpcode.H_INT_SET_QUEUE_CONFIG, fourKQueue],
    ] as const) {
      failing.failNext();
      const refused: VplaneError = await failure(hcall(opcode, [...args]));
      assert.deepEqual(
        [refused.code, refused.reason, refused.hcallReturnCode],
        ["UNAVAILABLE", "STORE_UNAVAILABLE", HcallReturn.H_HARDWARE],
      );
      assert.deepEqual({ dump: dump(), source: await sourceConfig() }, before);
    }
    await hcall(HcallOpcode.H_INT_SET_SOURCE_CONFIG, [...moveSource]);
    // The emulated device takes the END asked for; QEMU answers the target from that END's NVT:
    // (1, 6) has no queue here, so 0 - 0x400.
    assert.deepEqual(await sourceConfig(), [0xffff_fc00n, 0n, 0x99n]);
    assert.equal(device.getSourceConfig({ name, irq: 0x1300 }).source!.server, 1);
  });
});
