// Live migration through the gateway (issue 6, "Gateway"), against two embedded hosts of real
// services (interrupt-controller, iommu, migration; separate data folders) registered with one
// gateway: REST in, the source's migration service moves the VM, the gateway records the move.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { OperationProgress } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { unaryCall, type VplaneError } from "@vplane/service-kit";
import { startEmbeddedHost, type EmbeddedHost } from "./support/embedded-host.js";
import { openSse, type SseEvent } from "./support/sse-client.js";
import { loseAnswerOnce, stopInCall, untilStopped } from "./support/stopped-in-call.js";
import { startTestGateway, type OperationJson, type TestGateway } from "./support/test-gateway.js";

const MIB = 1 << 20;
/** How long a migrate operation may take to end here: generous, CI builds images beside these tests. */
const OPERATION_WAIT_MS = 60_000;
/** How long a migrate operation may stay CANCELLING here (the cancel interrupts any phase before switchover). */
const CANCEL_ENDS_WITHIN_MS = 10_000;
const QADDR = MIB; // the event queue's page in guest RAM
const IRQ = 10;
/** What a delivery of IRQ writes in the queue: generation bit (the queue's toggle, 0 as configured) | EISN. */
const ENTRY = IRQ;
const SID = 8;
/** Guest-physical window the device's DMA sees (stage 2 only: no PASID table), onto the queue page. */
const IPA = 0x4000_0000;
/** KVM SOURCE_CONFIG layout: priority bits 2:0, server bits 31:3, masked bit 32, EISN bits 63:33. */
const kvmConfig = (server: number, priority: number, eisn: number) =>
  ((BigInt(eisn) << 33n) | (BigInt(server) << 3n) | BigInt(priority)).toString();

interface VmJson {
  name: string;
  uid: string;
  host: string;
  state: string;
  guestMemoryPath: string;
  activeOperation?: string;
  placement: { reason: string };
}
interface MigrationJson {
  phase: string;
  operation: string;
  sourceHost: string;
  destinationHost: string;
  ramBytesTotal: number;
  ramBytesTransferred: number;
  deviceStateBytes: number;
  devicePrecopyBytes: number;
  devicePrecopyIterations: number;
  elapsedMs: number;
  downtimeMs: number;
  dirtyPages: number;
  cancelRequested: boolean;
  failedPhase?: string;
}
type MigrateOperation = OperationJson & {
  metadata: { migration?: MigrationJson; kind: string; host: string };
};

/** The queue entry at `index` of the queue at QADDR in a RAM file: generation bit | EISN (xive.md §3). */
function queueEntry(ramFile: string, index: number): number {
  return readFileSync(ramFile).readUInt32BE(QADDR + 4 * index);
}

describe("live migration through the gateway between two embedded hosts", () => {
  let a: EmbeddedHost;
  let b: EmbeddedHost;
  let gw: TestGateway;
  let base: string;

  before(async () => {
    // 4 KiB RAM chunks: a copy long enough to be caught (and cancelled) in COPYING_RAM.
    const env = { VPLANE_MIGRATION_RAM_CHUNK_BYTES: "4096" };
    [a, b] = await Promise.all([startEmbeddedHost("host-a", env), startEmbeddedHost("host-b", env)]);
    gw = await startTestGateway();
    for (const host of [a, b])
      await gw.services.hosts.register({ name: host.name, addresses: host.addresses }, "api");
    ({ base } = await gw.listen());
  });
  after(async () => {
    await gw.close();
    await Promise.all([a.stop(), b.stop()]);
  });

  const ok = async <T = Record<string, unknown>>(
    method: "GET" | "POST" | "PUT",
    url: string,
    body?: unknown,
    status = 200,
  ): Promise<T> => {
    const response = await gw.call("operator", method, url, body);
    assert.equal(response.statusCode, status, `${method} ${url}: ${response.body}`);
    return response.json<T>();
  };
  const vmOf = (name: string) => ok<VmJson>("GET", `/v1/vms/${name}`);
  const usageOf = async (host: string) =>
    (await ok<{ usage: { vms: number; vcpus: number } }>("GET", `/v1/hosts/${host}`)).usage;

  /**
   * A READY XIVE VM on host-a with vCPU 0 presented priority 6; with `smmu`, an SMMU "s0" with the
   * device of physical StreamID 8 (guest StreamID 0).
   */
  async function createVm(name: string, memoryBytes: number, smmu = false): Promise<VmJson> {
    const created = await ok<OperationJson>(
      "POST",
      "/v1/vms",
      {
        name,
        vcpus: 2,
        memoryBytes,
        interruptController: { mode: "xive", backend: "emulated", nrServers: 8 },
        ...(smmu
          ? { iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: SID, virtualSid: 0 }] }] } }
          : {}),
        placement: { host: "host-a" },
      },
      202,
    );
    const done = await gw.waitForOperation("operator", created.name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    await ok("POST", `/v1/vms/${name}/vcpus/connect`, { vcpuId: 0, server: 0 });
    await ok("POST", `/v1/vms/${name}/vcpus/0/tima`, {
      offset: 0x2_0011, // CPPR of the OS ring: 0xFF, so priority 6 is presented
      size: 1,
      kind: "ACCESS_KIND_STORE",
      value: "255",
    });
    return vmOf(name);
  }

  /** Source IRQ → queue (server 0, priority 6) at QADDR, EISN = IRQ, enabled (PQ 00). */
  async function routeSource(name: string) {
    await ok("POST", `/v1/vms/${name}/sources/init`, { sources: [{ irq: IRQ }] });
    await ok("PUT", `/v1/vms/${name}/queues/0/6`, { queue: { flags: 1, qshift: 16, qaddr: String(QADDR) } });
    await ok("POST", `/v1/vms/${name}/sources/configure`, {
      sources: [{ irq: IRQ, kvmConfig: kvmConfig(0, 6, IRQ) }],
    });
    await esb(name, 0xc00); // SET_PQ_00
  }
  const esb = (name: string, offset: number) =>
    ok("POST", `/v1/vms/${name}/sources/${IRQ}/esb`, {
      page: "ESB_PAGE_MANAGEMENT",
      offset,
      kind: "ACCESS_KIND_LOAD",
    });
  const trigger = (name: string) =>
    ok<{ delivered: number }>("POST", `/v1/vms/${name}/sources/trigger`, { irqs: [IRQ] });
  const queueIndex = async (name: string) =>
    (await ok<{ queue: { qindex: number } }>("GET", `/v1/vms/${name}/queues/0/6`)).queue.qindex;

  /** Starts a migration and waits for its end. */
  async function migrated(vm: string, body: Record<string, unknown>): Promise<MigrateOperation> {
    const started = await ok<MigrateOperation>("POST", `/v1/vms/${vm}:migrate`, body, 202);
    return await ended(gw, started.name);
  }

  /** The migrate operation `name` once it has ended, as `via` (a gateway replica) answers it. */
  const ended = async (via: TestGateway, name: string) =>
    (await via.waitForOperation("operator", name, OPERATION_WAIT_MS)) as MigrateOperation;

  /** Polls the operation until `until` holds for it (or it ends). */
  async function waitFor(name: string, until: (op: MigrateOperation) => boolean): Promise<MigrateOperation> {
    const deadline = performance.now() + OPERATION_WAIT_MS;
    for (;;) {
      const op = await ok<MigrateOperation>("GET", `/v1/${name}`);
      if (until(op) || op.done) return op;
      if (performance.now() > deadline)
        throw new Error(`operation ${name} never got there: ${JSON.stringify(op)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /**
   * Waits until placement takes VMs on `host` again: after one of its services restarted, the
   * gateway's health probe must have seen it SERVING (placement refuses an unhealthy host).
   */
  async function hostAvailable(host: string): Promise<void> {
    const deadline = performance.now() + OPERATION_WAIT_MS;
    for (;;) {
      // Availability is for admins (issue 17 point 9: other roles see their own usage only).
      const view = (await gw.call("admin", "GET", `/v1/hosts/${host}`)).json<{
        availability?: { state: string };
      }>();
      if (view.availability?.state === "AVAILABLE") return;
      if (performance.now() > deadline)
        throw new Error(`host ${host} never available: ${JSON.stringify(view)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A new VM of `memoryBytes` on host-a, migrating to host-b and caught while its RAM is copied. */
  async function migrationInRamCopy(name: string, memoryBytes: number) {
    const vm = await createVm(name, memoryBytes);
    const started = await ok<MigrateOperation>(
      "POST",
      `/v1/vms/${name}:migrate`,
      { destinationHost: "host-b" },
      202,
    );
    const copying = await waitFor(started.name, (op) => op.metadata.migration?.phase === "COPYING_RAM");
    assert.equal(copying.metadata.migration?.phase, "COPYING_RAM", "caught while the RAM is copied");
    return { vm, started };
  }

  /** The VM's controller as host's interrupt-controller service answers GetController, or the error code. */
  const controllerOn = async (host: EmbeddedHost, uid: string) => {
    const client = new InterruptControllerServiceClient(
      host.addresses.interruptController,
      credentials.createInsecure(),
    );
    try {
      return await unaryCall(client.getController.bind(client), { name: `vms/${uid}/controller` });
    } catch (error) {
      return (error as VplaneError).code;
    } finally {
      client.close();
    }
  };

  /** The device's DMA read of the first `entries` queue entries, through the SMMU (stage 2). */
  const dmaReadQueue = async (name: string, entries: number) => {
    const read = await ok<{ outcome: string; data: string }>("POST", `/v1/vms/${name}/smmus/s0/dma/read`, {
      streamId: SID,
      iova: String(IPA),
      length: 4 * entries,
    });
    assert.equal(read.outcome, "TRANSLATION_OUTCOME_TRANSLATED", JSON.stringify(read));
    const bytes = Buffer.from(read.data, "base64");
    return Array.from({ length: entries }, (_, i) => bytes.readUInt32BE(4 * i));
  };

  it("moves a VM with a delivered interrupt and active DMA translation from host-a to host-b: progress mirrored (SSE too), VM and usage recorded on host-b, the queue entry there, a trigger and DMA on host-b", async (t) => {
    // SMMU state moves once services/iommu serves DeviceStateService (see support/embedded-host.ts).
    const smmu = a.realIommuDeviceState && b.realIommuDeviceState;
    if (!smmu) t.diagnostic("the iommu service has no DeviceStateService here: the VM gets no SMMU");
    const vm = await createVm("mig-1", 2 * MIB, smmu);
    await routeSource("mig-1");
    assert.equal((await trigger("mig-1")).delivered, 1);
    const ramOnA = join(a.dataDir, vm.guestMemoryPath);
    assert.equal(queueEntry(ramOnA, 0), ENTRY, "the event is in the queue in host-a's RAM file");
    if (smmu) {
      await ok("POST", "/v1/vms/mig-1/smmus/s0/stage2/map", {
        mapping: {
          ipa: String(IPA),
          hostAddress: String(QADDR),
          size: String(64 * 1024),
          permission: "STAGE2_PERMISSION_READ_WRITE",
        },
      });
      assert.deepEqual(await dmaReadQueue("mig-1", 1), [ENTRY], "the device reads the queue page by DMA");
    }
    await esb("mig-1", 0xc00); // the guest's EOI (SET_PQ_00): the source may fire again

    const started = await ok<MigrateOperation>(
      "POST",
      "/v1/vms/mig-1:migrate",
      { destinationHost: "host-b" },
      202,
    );
    assert.equal(started.metadata.kind, "migrate");
    assert.equal(started.metadata.migration?.destinationHost, "host-b");
    assert.deepEqual(
      started.metadata.steps.map((s) => s.name),
      [
        "migration.StartMigration",
        "migration.SETTING_UP",
        "migration.COPYING_RAM",
        "migration.PRECOPYING_DEVICE_STATE",
        "migration.QUIESCING",
        "migration.TRANSFERRING_DEVICE_STATE",
        "migration.SWITCHING_OVER",
        "registry.commit",
      ],
    );
    const sse = await openSse(`${base}/v1/${started.name}/events`, {
      authorization: `Bearer ${gw.token.viewer}`,
    });
    const events: SseEvent[] = [];
    for (let event = await sse.next(20_000); event; event = await sse.next(20_000)) {
      events.push(event);
      if (event.event === "done") break;
    }
    sse.close();
    const done = events.at(-1)!.data as MigrateOperation;
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    assert.ok(
      done.metadata.steps.every((s) => s.state === "SUCCEEDED"),
      JSON.stringify(done.metadata.steps),
    );
    const migration = done.metadata.migration!;
    assert.equal(migration.phase, "COMPLETED");
    assert.match(migration.operation, /^operations\//);
    assert.equal(migration.ramBytesTotal, 2 * MIB);
    assert.equal(migration.ramBytesTransferred, 2 * MIB);
    assert.ok(migration.deviceStateBytes > 0);
    assert.ok(migration.devicePrecopyIterations >= 1, "device pre-copy iterations beside RAM");
    assert.ok(migration.devicePrecopyBytes <= migration.deviceStateBytes);
    assert.ok(migration.dirtyPages >= 1, "the queue page is reported dirty at quiesce");
    assert.ok(migration.elapsedMs >= migration.downtimeMs);
    const phases = events
      .filter((e) => e.event === "progress")
      .map((e) => (e.data as { migration?: MigrationJson }).migration?.phase);
    for (const phase of [
      "COPYING_RAM",
      "PRECOPYING_DEVICE_STATE",
      "QUIESCING",
      "SWITCHING_OVER",
      "COMPLETED",
    ])
      assert.ok(phases.includes(phase), `SSE progress shows ${phase}: ${phases.join(",")}`);
    assert.equal((done.response as unknown as VmJson).host, "host-b");

    const moved = await vmOf("mig-1");
    assert.equal(moved.host, "host-b");
    assert.equal(moved.state, "READY");
    assert.equal(moved.activeOperation, undefined);
    assert.equal(
      moved.guestMemoryPath,
      `guest-ram/${vm.uid}.ram`,
      "the RAM file the destination's devices use",
    );
    assert.match(moved.placement.reason, /migrated from host 'host-a'/);
    assert.deepEqual([(await usageOf("host-a")).vms, (await usageOf("host-b")).vms], [0, 1]);
    assert.deepEqual([(await usageOf("host-a")).vcpus, (await usageOf("host-b")).vcpus], [0, 2]);

    // The devices now live on host-b only, and the REST device endpoints reach them there.
    assert.equal(await controllerOn(a, vm.uid), "NOT_FOUND");
    assert.equal(typeof (await controllerOn(b, vm.uid)), "object");
    assert.equal(await queueIndex("mig-1"), 1, "host-b's queue carries the index the guest left");
    const source = await ok<{ source: { eisn: number; priority: number } }>(
      "GET",
      `/v1/vms/mig-1/sources/${IRQ}`,
    );
    assert.deepEqual([source.source.priority, source.source.eisn], [6, IRQ]);
    const ramOnB = join(b.dataDir, moved.guestMemoryPath);
    assert.equal(queueEntry(ramOnB, 0), ENTRY, "the queue entry came over with the RAM");
    assert.equal((await trigger("mig-1")).delivered, 1);
    assert.equal(queueEntry(ramOnB, 1), ENTRY, "a trigger on host-b lands in host-b's RAM");
    assert.equal(existsSync(ramOnA), false, "host-a's copy was removed after the switchover");
    assert.equal(await queueIndex("mig-1"), 2);
    if (smmu) {
      // The SMMU moved with its stage 2 and device; its DMA reads host-b's RAM file.
      assert.deepEqual(await dmaReadQueue("mig-1", 2), [ENTRY, ENTRY]);
      const translated = await ok<{ outcome: string; address: string }>(
        "POST",
        "/v1/vms/mig-1/smmus/s0/translate",
        {
          streamId: SID,
          iova: String(IPA + 0x124),
        },
      );
      assert.deepEqual(
        [translated.outcome, translated.address],
        ["TRANSLATION_OUTCOME_TRANSLATED", String(QADDR + 0x124)],
      );
    }
  });

  it("cancel while RAM is copied: CANCELLING, then CANCELLED with the phase; the VM stays on host-a and works, host-b holds nothing; a busy VM refuses migrate and delete with 409", async () => {
    const vm = await createVm("mig-2", 64 * MIB);
    await routeSource("mig-2");
    const started = await ok<MigrateOperation>(
      "POST",
      "/v1/vms/mig-2:migrate",
      { destinationHost: "host-b" },
      202,
    );
    for (const [method, url, body] of [
      ["POST", "/v1/vms/mig-2:migrate", { destinationHost: "host-b" }],
      ["DELETE", "/v1/vms/mig-2", undefined],
    ] as const) {
      const busy = await gw.call("operator", method, url, body);
      assert.equal(busy.statusCode, 409, busy.body);
      const error = busy.json<{ error: { code: string; reason: string } }>().error;
      assert.deepEqual([error.code, error.reason], ["ABORTED", "OPERATION_IN_PROGRESS"]);
    }
    const copying = await waitFor(started.name, (op) => op.metadata.migration?.phase === "COPYING_RAM");
    assert.equal(
      copying.done,
      false,
      `the copy ended before the cancel: ${JSON.stringify(copying.metadata)}`,
    );
    const cancelling = await ok<MigrateOperation>("POST", `/v1/${started.name}/cancel`);
    assert.equal(cancelling.metadata.state, "CANCELLING", "accepted is not cancelled");
    assert.equal(cancelling.metadata.cancelRequested, true);
    const done = await ended(gw, started.name);
    assert.equal(done.metadata.state, "CANCELLED", JSON.stringify(done.error));
    assert.equal(done.error?.code, "CANCELLED");
    assert.equal(done.error?.details["phase"], "COPYING_RAM");
    assert.equal(done.metadata.migration?.phase, "CANCELLED");
    assert.equal(done.metadata.migration?.cancelRequested, true, "the migration service was asked");
    assert.ok(done.metadata.migration.ramBytesTransferred < 64 * MIB);
    const rolledBack = done.metadata.steps.find((s) => s.name === "migration.COPYING_RAM");
    assert.equal(rolledBack?.state, "ROLLED_BACK");

    const stayed = await vmOf("mig-2");
    assert.deepEqual([stayed.host, stayed.state, stayed.activeOperation], ["host-a", "READY", undefined]);
    assert.equal(stayed.guestMemoryPath, vm.guestMemoryPath);
    assert.equal(await controllerOn(b, vm.uid), "NOT_FOUND", "host-b holds no devices of the VM");
    assert.equal(existsSync(join(b.dataDir, "guest-ram", `${vm.uid}.ram`)), false, "nor its RAM");
    assert.equal((await trigger("mig-2")).delivered, 1, "the VM goes on running on host-a");
    assert.equal(queueEntry(join(a.dataDir, vm.guestMemoryPath), 0), ENTRY);
    assert.equal((await usageOf("host-b")).vms, 1, "only mig-1 counts on host-b");
  });

  it("back to host-a and out again: each switchover removes the source's RAM copy, so the VM can come back", async () => {
    const home = await migrated("mig-1", { destinationHost: "host-a" });
    assert.equal(home.metadata.state, "SUCCEEDED", JSON.stringify(home.error));
    const vm = await vmOf("mig-1");
    assert.deepEqual([vm.host, vm.guestMemoryPath], ["host-a", `guest-ram/${vm.uid}.ram`]);
    const ram = join(a.dataDir, vm.guestMemoryPath);
    assert.deepEqual([queueEntry(ram, 0), queueEntry(ram, 1)], [ENTRY, ENTRY]);
    assert.equal(await queueIndex("mig-1"), 2);
    assert.equal(existsSync(join(b.dataDir, vm.guestMemoryPath)), false, "host-b kept no copy");

    const again = await migrated("mig-1", { destinationHost: "host-b" });
    assert.equal(again.metadata.state, "SUCCEEDED", JSON.stringify(again.error));
    const there = await vmOf("mig-1");
    assert.deepEqual([there.host, there.activeOperation], ["host-b", undefined]);
    await esb("mig-1", 0xc00); // EOI
    assert.equal((await trigger("mig-1")).delivered, 1);
    assert.equal(queueEntry(join(b.dataDir, there.guestMemoryPath), 2), ENTRY, "the VM runs on host-b");
  });

  it("with vmmMovesRam only device state crosses: no RAM bytes, the dirty queue page reported, the VM recorded with the destination's binding; an Idempotency-Key retry answers the first operation", async () => {
    const vm = await createVm("mig-3", 2 * MIB);
    await routeSource("mig-3");
    await trigger("mig-3");
    const body = { destinationHost: "host-b", vmmMovesRam: true, downtimeLimitMs: 60_000 };
    const key = { "idempotency-key": "move-mig-3" };
    const first = await gw.call("operator", "POST", "/v1/vms/mig-3:migrate", body, key);
    assert.equal(first.statusCode, 202, first.body);
    const started = first.json<MigrateOperation>();
    const retry = await gw.call("operator", "POST", "/v1/vms/mig-3:migrate", body, key);
    assert.equal(retry.statusCode, 202, `a retry is not refused as busy: ${retry.body}`);
    assert.equal(retry.json<MigrateOperation>().name, started.name, "and starts no second migration");
    assert.ok(!started.metadata.steps.some((s) => s.name === "migration.COPYING_RAM"));
    const done = await ended(gw, started.name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    assert.deepEqual(
      [done.metadata.migration?.ramBytesTotal, done.metadata.migration?.ramBytesTransferred],
      [0, 0],
    );
    assert.ok(done.metadata.migration!.dirtyPages >= 1);
    const moved = await vmOf("mig-3");
    assert.equal(moved.host, "host-b");
    // The VMM moves RAM to a file of the same name on host-b; the imported devices open that one.
    assert.equal(moved.guestMemoryPath, vm.guestMemoryPath);
    assert.equal(existsSync(join(b.dataDir, "guest-ram", `${vm.uid}.ram`)), false, "nothing was copied");
    assert.equal(await queueIndex("mig-3"), 1);
  });

  it("a cancel made through another gateway replica (one shared registry) reaches the migration: CANCELLED, the VM stays", async () => {
    const replica = await startTestGateway({ store: gw.services.store, tokens: gw.tokens });
    try {
      const { vm, started } = await migrationInRamCopy("mig-4", 256 * MIB);
      const cancel = await replica.call("operator", "POST", `/v1/${started.name}/cancel`);
      assert.equal(cancel.statusCode, 200, cancel.body);
      assert.equal(cancel.json<MigrateOperation>().metadata.state, "CANCELLING");
      const done = await ended(gw, started.name);
      assert.equal(done.metadata.state, "CANCELLED", JSON.stringify(done.error));
      assert.equal(done.metadata.migration?.cancelRequested, true);
      assert.ok(done.metadata.migration.ramBytesTransferred < 256 * MIB, "stopped before the copy ended");
      assert.deepEqual([(await vmOf("mig-4")).host, await controllerOn(b, vm.uid)], ["host-a", "NOT_FOUND"]);
    } finally {
      await replica.close();
    }
  });

  it("the source's migration service crashes mid-copy and comes back (its operations lived in memory): the outcome is looked up on the hosts, the VM stays on host-a with UNAVAILABLE MIGRATION_OUTCOME_LOST", async () => {
    const { vm, started } = await migrationInRamCopy("mig-5", 64 * MIB);
    await a.crashMigration();
    const done = await ended(gw, started.name);
    assert.equal(done.metadata.state, "FAILED");
    assert.deepEqual(
      [done.error?.code, done.error?.reason, done.error?.details["phase"]],
      ["UNAVAILABLE", "MIGRATION_OUTCOME_LOST", "COPYING_RAM"],
      JSON.stringify(done.error),
    );
    assert.match(done.error!.message, /is on host 'host-a'/);
    const stayed = await vmOf("mig-5");
    assert.deepEqual([stayed.host, stayed.state, stayed.activeOperation], ["host-a", "READY", undefined]);
    assert.equal(await controllerOn(b, vm.uid), "NOT_FOUND");
    // The restarted service migrates it now (the destination dropped the broken transfer), once
    // the gateway sees it serving again.
    await hostAvailable("host-a");
    const retried = await migrated("mig-5", { destinationHost: "host-b", vmmMovesRam: true });
    assert.equal(retried.metadata.state, "SUCCEEDED", JSON.stringify(retried.error));
  });

  it("the gateway replica running a migration stops mid-copy: another replica adopts the operation, follows the migration (which went on) to its end and records the VM on host-b", async () => {
    const replica = await startTestGateway({ store: gw.services.store, tokens: gw.tokens });
    try {
      const { vm, started } = await migrationInRamCopy("mig-7", 64 * MIB);
      // The running replica is taken for stopped: its operation now names an owner without a
      // heartbeat, as after a kill -9 (it notices at its next step and stops, cancelling nothing).
      const id = started.name.slice("operations/".length);
      await gw.services.operations.update("acme", id, (r) => ({ ...r, owner: "gw-stopped" }));

      // Two replicas look at once: one adopts it, the other leaves it (neither adopted nor ended).
      const second = await startTestGateway({ store: gw.services.store, tokens: gw.tokens });
      try {
        const handled = await Promise.all([
          replica.services.recovery.reap(),
          second.services.recovery.reap(),
        ]);
        assert.deepEqual(handled.flat(), [started.name], JSON.stringify(handled));
      } finally {
        await second.close();
      }
      const done = await ended(replica, started.name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.equal(done.metadata.migration?.phase, "COMPLETED");
      assert.equal(done.metadata.migration.ramBytesTransferred, 64 * MIB);
      const events = await replica.call("operator", "GET", `/v1/${started.name}/events`);
      assert.match(events.body, /adopted by gateway replica gw-[0-9a-f]+ \(replica gw-stopped stopped\)/);
      const moved = await vmOf("mig-7");
      assert.deepEqual([moved.host, moved.state, moved.activeOperation], ["host-b", "READY", undefined]);
      assert.equal(await controllerOn(a, vm.uid), "NOT_FOUND");
      assert.notEqual(typeof (await controllerOn(b, vm.uid)), "string", "the controller is on host-b");

      // The first replica stopped without writing over the adopter's record.
      await gw.services.runner.drain();
      const after = await ok<MigrateOperation>("GET", `/v1/${started.name}`);
      assert.deepEqual([after.metadata.state, after.metadata.migration?.phase], ["SUCCEEDED", "COMPLETED"]);
    } finally {
      await replica.close();
    }
  });

  /**
   * Migrates `name` to host-b through `gw`, whose replica then "stops" inside StartMigration:
   * with `reached`, once the source answered (the migration runs there; the answer is never
   * recorded), else before the call leaves (nothing runs anywhere). Its operation then names an
   * owner without a heartbeat, as after a kill -9, still at the step the record had reached.
   * `resume` lets the stopped replica go on (it must find its operation taken over and stop).
   */
  async function stoppedInStartMigration(name: string, reached: boolean) {
    const stopped = stopInCall(gw.services.connections, "StartMigration", reached);
    const resume = async () => {
      stopped.resume();
      await gw.services.runner.drain();
    };
    try {
      const started = await ok<MigrateOperation>(
        "POST",
        `/v1/vms/${name}:migrate`,
        { destinationHost: "host-b" },
        202,
      );
      await untilStopped(stopped, reached);
      const id = started.name.slice("operations/".length);
      const record = await gw.services.operations.update("acme", id, (r) => ({ ...r, owner: "gw-stopped" }));
      assert.equal(record?.value.metadata.migration?.operation, "", "the migration's name is not recorded");
      const startedOnSource = (stopped.answer as { name: string } | undefined)?.name;
      return { started, startedOnSource, resume };
    } catch (error) {
      await resume();
      throw error;
    }
  }

  /** The migrate operations the migration service of `host` holds for the VM `uid`. */
  async function migrationsOn(host: EmbeddedHost, uid: string): Promise<string[]> {
    const client = gw.services.connections.clientsOf(host.addresses).migrationOperations;
    const { operations } = await unaryCall(client.listOperations.bind(client), {
      name: "",
      filter: "",
      pageSize: 500,
      pageToken: "",
      returnPartialSuccess: false,
    });
    return operations
      .filter((op) => OperationProgress.decode(op.metadata!.value).vm === uid)
      .map((op) => op.name);
  }

  /** Waits until the migration service of `host` holds its operation `name` done. */
  async function migrationEnded(host: EmbeddedHost, name: string): Promise<void> {
    const client = gw.services.connections.clientsOf(host.addresses).migrationOperations;
    const deadline = performance.now() + OPERATION_WAIT_MS;
    while (!(await unaryCall(client.getOperation.bind(client), { name })).done) {
      assert.ok(performance.now() < deadline, `${name} never ended on ${host.name}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Adopts the stopped replica's operation `name` through another replica; the ended operation. */
  async function adoptedToTheEnd(name: string): Promise<MigrateOperation> {
    const replica = await startTestGateway({ store: gw.services.store, tokens: gw.tokens });
    try {
      assert.deepEqual(await replica.services.recovery.reap(), [name]);
      return await ended(replica, name);
    } finally {
      await replica.close();
    }
  }

  // Rule: an adopted migrate operation whose migration's name was never recorded is not ended as
  // abandoned (its VM FAILED): StartMigration is asked again with the operation's request id,
  // which the source answers with the migration that request started (finished or not), or starts.
  it("the gateway replica stops between the source's StartMigration answer and recording it: the adopter asks again with the operation's request id, gets that migration (finished meanwhile) and records the VM on host-b; no second migration", async () => {
    const vm = await createVm("mig-8", 2 * MIB);
    const { started, startedOnSource, resume } = await stoppedInStartMigration("mig-8", true);
    try {
      await migrationEnded(a, startedOnSource!);
      const done = await adoptedToTheEnd(started.name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.deepEqual(
        [done.metadata.migration?.operation, done.metadata.migration?.phase],
        [startedOnSource, "COMPLETED"],
      );
      const events = await gw.call("operator", "GET", `/v1/${started.name}/events`);
      assert.match(events.body, /asking host host-a again for the migration it may have started/);
      const moved = await vmOf("mig-8");
      assert.deepEqual([moved.host, moved.state, moved.activeOperation], ["host-b", "READY", undefined]);
      assert.deepEqual(await migrationsOn(a, vm.uid), [startedOnSource], "one migration only");
    } finally {
      await resume();
    }
    const after = await ok<MigrateOperation>("GET", `/v1/${started.name}`);
    assert.equal(after.metadata.state, "SUCCEEDED", "the stopped replica wrote nothing over it");
    assert.equal((await vmOf("mig-8")).host, "host-b");
  });

  it("the gateway replica stops before its StartMigration reached the source: the adopter's StartMigration starts the migration and records the VM on host-b", async () => {
    const vm = await createVm("mig-9", 2 * MIB);
    const { started, resume } = await stoppedInStartMigration("mig-9", false);
    try {
      assert.deepEqual(await migrationsOn(a, vm.uid), [], "nothing started yet");
      const done = await adoptedToTheEnd(started.name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      const moved = await vmOf("mig-9");
      assert.deepEqual([moved.host, moved.state, moved.activeOperation], ["host-b", "READY", undefined]);
      assert.deepEqual(await migrationsOn(a, vm.uid), [done.metadata.migration?.operation]);
    } finally {
      await resume();
    }
    assert.equal((await ok<MigrateOperation>("GET", `/v1/${started.name}`)).metadata.state, "SUCCEEDED");
  });

  it("the source forgot the first StartMigration (its migration service restarted after the migration completed): the request id starts a new migration, which fails; the VM's controller on host-b says where it is", async () => {
    const vm = await createVm("mig-10", 2 * MIB);
    const { started, startedOnSource, resume } = await stoppedInStartMigration("mig-10", true);
    try {
      await migrationEnded(a, startedOnSource!);
      await a.crashMigration();
      const done = await adoptedToTheEnd(started.name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.notEqual(done.metadata.migration?.operation, startedOnSource, "a new migration was started");
      assert.equal(done.metadata.migration?.phase, "FAILED");
      const moved = await vmOf("mig-10");
      assert.deepEqual([moved.host, moved.state, moved.activeOperation], ["host-b", "READY", undefined]);
      assert.equal(await controllerOn(a, vm.uid), "NOT_FOUND");
    } finally {
      await resume();
      await hostAvailable("host-a");
    }
  });

  // Rule: a StartMigration whose answer is lost (UNAVAILABLE after the source applied it) may have
  // started the migration: the replica asks again with the operation's request id and follows the
  // migration the source answers, instead of recording the VM on its source while it moves.
  it("the source's StartMigration answer is lost after it started the migration: the replica asks again with the operation's request id, follows that migration and records the VM on host-b; one migration only", async () => {
    const vm = await createVm("mig-12", 2 * MIB);
    const lost = loseAnswerOnce(gw.services.connections, "StartMigration");
    try {
      const started = await ok<MigrateOperation>(
        "POST",
        "/v1/vms/mig-12:migrate",
        { destinationHost: "host-b" },
        202,
      );
      const done = await ended(gw, started.name);
      const first = (lost.answer as { name: string } | undefined)?.name;
      assert.ok(first, "the first StartMigration reached host-a");
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.equal(done.metadata.migration?.operation, first);
      const moved = await vmOf("mig-12");
      assert.deepEqual([moved.host, moved.state, moved.activeOperation], ["host-b", "READY", undefined]);
      assert.deepEqual(await migrationsOn(a, vm.uid), [first], "one migration only");
    } finally {
      lost.restore();
    }
  });

  it("the gateway replica stops after recording the VM on host-b but before recording its operation's end: the adopter ends it SUCCEEDED with the VM, not FAILED", async () => {
    await createVm("mig-11", 2 * MIB);
    const done = await migrated("mig-11", { destinationHost: "host-b" });
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    // The record as the stopped replica left it: everything but the end written.
    const id = done.name.slice("operations/".length);
    await gw.services.operations.update("acme", id, (r) => {
      const { response: _unwritten, ...rest } = r;
      return { ...rest, done: false, owner: "gw-stopped", metadata: { ...r.metadata, state: "RUNNING" } };
    });
    const adopted = await adoptedToTheEnd(done.name);
    assert.equal(adopted.metadata.state, "SUCCEEDED", JSON.stringify(adopted.error));
    assert.deepEqual(
      [adopted.response?.["name"], adopted.response?.["host"], adopted.response?.["state"]],
      ["mig-11", "host-b", "READY"],
    );
    const vm = await vmOf("mig-11");
    assert.deepEqual([vm.host, vm.state, vm.activeOperation], ["host-b", "READY", undefined]);
  });

  it("a cancel at any moment, 0 to 200 ms after the migrate in 8 ms steps, ends the operation promptly: CANCELLED with the VM READY on its source and nothing on the other host, or SUCCEEDED when it came past switchover (issue 17 point 10)", async (t) => {
    const vm = await createVm("mig-cancel", 1 * MIB);
    let [from, to] = [a, b];
    const outcomes: string[] = [];
    for (let delayMs = 0; delayMs <= 200; delayMs += 8) {
      const started = await ok<MigrateOperation>(
        "POST",
        "/v1/vms/mig-cancel:migrate",
        { destinationHost: to.name },
        202,
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const cancelled = await gw.call("operator", "POST", `/v1/${started.name}/cancel`);
      assert.equal(cancelled.statusCode, 200, cancelled.body);
      const cancelAt = performance.now();
      const done = await ended(gw, started.name);
      const cancellingMs = performance.now() - cancelAt;
      const where = `cancel after ${delayMs} ms: ${done.metadata.state} in ${Math.round(cancellingMs)} ms (phase ${done.metadata.migration?.phase})`;
      outcomes.push(where);
      assert.ok(cancellingMs <= CANCEL_ENDS_WITHIN_MS, `${where}: CANCELLING for too long`);
      assert.ok(
        ["CANCELLED", "SUCCEEDED"].includes(done.metadata.state),
        `${where}: ${JSON.stringify(done.error)}`,
      );
      const after = await vmOf("mig-cancel");
      assert.deepEqual([after.state, after.activeOperation], ["READY", undefined], where);
      if (done.metadata.state === "SUCCEEDED") {
        assert.equal(after.host, to.name, where);
        assert.equal(await controllerOn(from, vm.uid), "NOT_FOUND", `${where}: the source released the VM`);
        [from, to] = [to, from];
      } else {
        assert.equal(done.error?.code, "CANCELLED", where);
        assert.equal(after.host, from.name, where);
        assert.equal(typeof (await controllerOn(from, vm.uid)), "object", `${where}: the devices stay`);
        assert.equal(await controllerOn(to, vm.uid), "NOT_FOUND", `${where}: the destination holds nothing`);
      }
    }
    t.diagnostic(outcomes.join("; "));
    assert.ok(
      outcomes.some((o) => o.includes("CANCELLED")),
      outcomes.join("\n"),
    );
  });

  it("another tenant's VM answers 404 exactly like a missing one, and a viewer may not migrate", async () => {
    const theirs = await gw.call("other", "POST", "/v1/vms/mig-2:migrate", { destinationHost: "host-b" });
    const none = await gw.call("other", "POST", "/v1/vms/absent-vm:migrate", { destinationHost: "host-b" });
    assert.equal(theirs.statusCode, 404);
    assert.deepEqual(theirs.json(), JSON.parse(none.body.replaceAll("absent-vm", "mig-2")));
    const viewer = await gw.call("viewer", "POST", "/v1/vms/mig-2:migrate", { destinationHost: "host-b" });
    assert.equal(viewer.statusCode, 403);
    assert.equal((await vmOf("mig-2")).host, "host-a");
  });
});
