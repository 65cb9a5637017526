// The migration service driving the real interrupt-controller service (the IOMMU side is a fake
// that holds no devices of this VM): a XIVE guest with an interrupt pending is live-migrated, its
// queue page travels in the RAM copy, and what the guest observes afterwards on the destination
// equals what a VM that never moved observes after the same steps (issue 6: no lost interrupt).
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { FileGuestMemory } from "@vplane/guest-memory";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, EsbPage } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { VplaneError, unaryCall } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";
import { encodeKvmSourceConfig } from "@vplane/xive";
import type { DeviceCall, FakeDevices } from "./fake-device-service.js";
import { TestHost } from "./test-host.js";

const RAM = 1024n * 1024n;
const QADDR = 0x1_0000n;
const IRQ = 0x1300;
const OS_PAGE = 0x2_0000;

interface XiveHost {
  host: TestHost;
  interrupts: ServiceUnderTest;
  client: InterruptControllerServiceClient;
}

async function startXiveHost(): Promise<XiveHost> {
  const host = new TestHost();
  const interrupts = await startServiceForTests(interruptControllerDescription, {
    VPLANE_DATA_DIR: host.dataDir,
  });
  await host.startWith({ interruptTarget: interrupts.address });
  return {
    host,
    interrupts,
    client: new InterruptControllerServiceClient(interrupts.address, credentials.createInsecure()),
  };
}

let source: XiveHost;
let destination: XiveHost;
before(async () => {
  [source, destination] = await Promise.all([startXiveHost(), startXiveHost()]);
});
after(async () => {
  for (const side of [source, destination]) {
    side.client.close();
    await side.host.stop();
    await side.interrupts.stop(500);
  }
});

/** A XIVE guest with vCPU 0, queue (0, 6) at QADDR, source IRQ routed there with EISN IRQ, PQ 00. */
async function bootGuest(side: XiveHost, vm: string) {
  const name = `vms/${vm}/controller`;
  // The VMM creates the guest RAM file; the services open it.
  mkdirSync(join(side.host.dataDir, "guest-ram"), { recursive: true });
  writeFileSync(join(side.host.dataDir, "guest-ram", `${vm}.ram`), Buffer.alloc(Number(RAM)));
  await unaryCall(side.client.createController.bind(side.client), {
    controller: {
      name: "",
      vm,
      mode: ControllerMode.CONTROLLER_MODE_XIVE,
      activeMode: ActiveMode.ACTIVE_MODE_UNSPECIFIED,
      nrServers: 4,
      backend: Backend.BACKEND_EMULATED,
      guestMemory: { path: `guest-ram/${vm}.ram`, sizeBytes: RAM },
      connectedServers: [],
      sourceCount: 0,
      createTime: undefined,
    },
    requestId: "",
  });
  await unaryCall(side.client.connectVcpu.bind(side.client), { name, vcpuId: 0, server: 0, requestId: "" });
  await unaryCall(side.client.initSources.bind(side.client), {
    name,
    sources: [{ irq: IRQ, levelSensitive: false, asserted: false }],
    requestId: "",
  });
  await unaryCall(side.client.configureQueue.bind(side.client), {
    name,
    server: 0,
    priority: 6,
    queue: { flags: 1, qshift: 16, qaddr: QADDR, qtoggle: 1, qindex: 0 },
    requestId: "",
  });
  const kvmConfig = encodeKvmSourceConfig({ server: 0, priority: 6, eisn: IRQ, masked: false });
  await unaryCall(side.client.configureSources.bind(side.client), {
    name,
    sources: [{ irq: IRQ, kvmConfig }],
    requestId: "",
  });
  await esb(side, vm, 0xc00); // SET_PQ_00: the source may fire
}

const esb = (side: XiveHost, vm: string, offset: number) =>
  unaryCall(side.client.esbAccess.bind(side.client), {
    name: `vms/${vm}/controller`,
    irq: IRQ,
    page: EsbPage.ESB_PAGE_MANAGEMENT,
    offset,
    size: 8,
    kind: AccessKind.ACCESS_KIND_LOAD,
    value: 0n,
  });
const trigger = (side: XiveHost, vm: string) =>
  unaryCall(side.client.triggerSources.bind(side.client), { name: `vms/${vm}/controller`, irqs: [IRQ] });
const ack = (side: XiveHost, vm: string) =>
  unaryCall(side.client.timaAccess.bind(side.client), {
    name: `vms/${vm}/controller`,
    server: 0,
    offset: OS_PAGE + 0x810,
    size: 2,
    kind: AccessKind.ACCESS_KIND_LOAD,
    value: 0n,
  });

/** What the guest can see: its queue words, the source's PQ (ESB GET), the OS ring word 0. */
async function observe(side: XiveHost, vm: string) {
  const ram = new FileGuestMemory(join(side.host.dataDir, "guest-ram", `${vm}.ram`), Number(RAM));
  const words = Array.from({ length: 4 }, (_, i) => ram.readU32BE(Number(QADDR) + 4 * i));
  ram.close();
  const pq = (await esb(side, vm, 0x800)).value; // ESB GET
  const vp = (
    await unaryCall(side.client.getVpState.bind(side.client), { name: `vms/${vm}/controller`, server: 0 })
  ).word0;
  return { words, pq, vp };
}

test("a XIVE guest migrated with an interrupt pending observes exactly what an unmigrated one does", async () => {
  // Before: one interrupt delivered, acknowledged and EOIed; a second one pending in the queue.
  for (const [side, vm] of [
    [source, "vm-moved"],
    [source, "vm-control"],
  ] as const) {
    await bootGuest(side, vm);
    await trigger(side, vm);
    await ack(side, vm);
    await esb(side, vm, 0x000); // EOI
    await trigger(side, vm);
  }

  const operation = await source.host.startMigration({
    vm: "vm-moved",
    destination: destination.host.migration.address,
    guestMemory: { path: "guest-ram/vm-moved.ram", sizeBytes: RAM },
  });
  const { progress } = await source.host.finish(operation);
  assert.equal(progress.phase, Phase.PHASE_COMPLETED, progress.errorMessage);
  assert.ok(progress.dirtyPages.includes(QADDR), "the queue page was reported dirty at quiesce");
  await assert.rejects(
    unaryCall(source.client.getController.bind(source.client), { name: "vms/vm-moved/controller" }),
    {
      code: "NOT_FOUND",
    },
  );

  // After: the guest acknowledges the pending interrupt, EOIs it, and a new one arrives.
  for (const [side, vm] of [
    [destination, "vm-moved"],
    [source, "vm-control"],
  ] as const) {
    await ack(side, vm);
    await esb(side, vm, 0x000);
    await trigger(side, vm);
  }
  const moved = await observe(destination, "vm-moved");
  const control = await observe(source, "vm-control");
  assert.deepEqual(moved, control);
  assert.equal(
    moved.words.filter((w) => (w & 0x7fffffff) === IRQ).length,
    3,
    "three events in the queue, none lost",
  );
});

/** The events with EISN IRQ in the guest's queue on `side` (the first 16 entries). */
function queuedEvents(side: XiveHost, vm: string): number {
  const ram = new FileGuestMemory(join(side.host.dataDir, "guest-ram", `${vm}.ram`), Number(RAM));
  const words = Array.from({ length: 16 }, (_, i) => ram.readU32BE(Number(QADDR) + 4 * i));
  ram.close();
  return words.filter((w) => (w & 0x7fffffff) === IRQ).length;
}

/** Resolves once `fake` has entered `call` (a held call is entered and waits). */
async function entered(fake: FakeDevices, call: DeviceCall): Promise<void> {
  while (!fake.calls.includes(call)) await new Promise((r) => setTimeout(r, 2));
}

// Issue 17 point 1: a trigger on the source after its device state was exported used to be
// answered OK (held while quiesced) and lost with the source's copy. Whatever reaches the source
// in any phase must arrive on the destination exactly once, or be refused UNAVAILABLE
// VM_MIGRATING naming the destination, so that the caller resends it there.
test("a trigger in every migration phase reaches the destination's queue exactly once", async () => {
  type Case = { phase: string; hold?: [FakeDevices, DeviceCall]; waitEntered?: boolean };
  const cases: Case[] = [
    // Issue 14: the stop is the source's StopAndCopy and the destination's FinishImport (apply + resume).
    { phase: "setting up / copying RAM", hold: [source.host.iommu, "stopAndCopy"] },
    { phase: "quiescing", hold: [source.host.iommu, "stopAndCopy"], waitEntered: true },
    {
      phase: "transferring device state / switching over",
      hold: [destination.host.iommu, "finishImport"],
      waitEntered: true,
    },
    { phase: "completed" },
  ];
  for (const [i, c] of cases.entries()) {
    const vm = `vm-phase-${i}`;
    await bootGuest(source, vm);
    // An SMMU section too, so that the destination's (fake) IOMMU can hold the migration in a phase.
    source.host.iommu.vms.set(vm, {
      payload: Buffer.from("smmu"),
      changes: [],
      quiesced: false,
      dirtyPages: [],
      guestMemoryPath: "",
    });
    let release = () => {};
    if (c.hold) {
      const [fake, call] = c.hold;
      fake.calls.length = 0;
      fake.holds.set(call, new Promise<void>((resolve) => (release = resolve)));
    }
    const operation = await source.host.startMigration({
      vm,
      destination: destination.host.migration.address,
      guestMemory: { path: `guest-ram/${vm}.ram`, sizeBytes: RAM },
    });
    if (c.hold && c.waitEntered) await entered(c.hold[0], c.hold[1]);
    const finished = c.hold ? undefined : await source.host.finish(operation);
    const outcome = await trigger(source, vm).then(
      () => "accepted" as const,
      (e: unknown) => e,
    );
    if (c.hold) c.hold[0].holds.delete(c.hold[1]);
    release();
    const { progress } = finished ?? (await source.host.finish(operation));
    assert.equal(progress.phase, Phase.PHASE_COMPLETED, `${c.phase}: ${progress.errorMessage}`);
    if (outcome !== "accepted") {
      assert.ok(outcome instanceof VplaneError, `${c.phase}: ${String(outcome)}`);
      assert.deepEqual(
        [outcome.code, outcome.reason, outcome.metadata?.["destination"]],
        ["UNAVAILABLE", "VM_MIGRATING", destination.host.migration.address],
        `${c.phase}: ${outcome.message}`,
      );
      await trigger(destination, vm); // resent where the error says
    }
    assert.equal(
      queuedEvents(destination, vm),
      1,
      `${c.phase}: the trigger (${outcome === "accepted" ? "accepted" : "refused, resent"}) is in the destination's queue once`,
    );
  }
});
