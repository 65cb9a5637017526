// Save and restore through the gRPC API, and every refused snapshot (issue 6: wrong version, bad
// checksum, truncated, oversized, another VM's): refused with a clear error, nothing imported.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { Snapshot } from "@vplane/proto/gen/vplane/migration/v1/snapshot";
import { VplaneError, unaryCall } from "@vplane/service-kit";
import { TestHost } from "./test-host.js";

let host: TestHost;
before(async () => {
  host = await TestHost.start({ VPLANE_MIGRATION_MAX_SNAPSHOT_BYTES: "65536" });
});
after(() => host.stop());

async function save(vm: string, snapshotId: string, resume = true) {
  const started = await unaryCall(
    host.client.saveSnapshot.bind(host.client),
    { vm, snapshotId, requestId: "", resume },
    { timeoutMs: 5000 },
  );
  return host.finish(started);
}

async function restoreFails(snapshot: string, vm: string): Promise<VplaneError> {
  const error = await unaryCall(
    host.client.restoreSnapshot.bind(host.client),
    { snapshot, vm, guestMemory: undefined, requestId: "" },
    { timeoutMs: 5000 },
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof VplaneError, "restore of a bad snapshot must be refused");
  return error;
}

describe("save and restore", () => {
  test("save quiesces, exports both devices in import order, writes the snapshot and resumes", async () => {
    host.addVm("vm-a");
    const { operation, progress } = await save("vm-a", "snap-a");
    assert.equal(progress.phase, Phase.PHASE_COMPLETED);
    assert.equal(operation.result?.$case, "response");
    const snapshot = Snapshot.decode(
      operation.result?.$case === "response" ? operation.result.value.value : Buffer.alloc(0),
    );
    assert.equal(snapshot.name, "snapshots/snap-a");
    assert.deepEqual(snapshot.sections, ["xive vms/vm-a/controller", "smmuv3 vms/vm-a/smmus/smmu0"]);
    assert.deepEqual(progress.dirtyPages, [0x1000n]);
    assert.equal(host.interrupts.vms.get("vm-a")?.quiesced, false, "resumed after the save");
    const listed = await unaryCall(
      host.client.listSnapshots.bind(host.client),
      { pageSize: 0, pageToken: "" },
      { timeoutMs: 5000 },
    );
    assert.ok(listed.snapshots.some((s) => s.name === "snapshots/snap-a"));
  });

  test("restore brings both devices back, resumed, only into an empty host", async () => {
    host.addVm("vm-b");
    await save("vm-b", "snap-b");
    host.interrupts.vms.delete("vm-b");
    host.iommu.vms.delete("vm-b");
    const started = await unaryCall(
      host.client.restoreSnapshot.bind(host.client),
      {
        snapshot: "snapshots/snap-b",
        vm: "vm-b",
        guestMemory: { path: "guest-ram/vm-b.ram", sizeBytes: 262144n },
        requestId: "",
      },
      { timeoutMs: 5000 },
    );
    const { progress } = await host.finish(started);
    assert.equal(progress.phase, Phase.PHASE_COMPLETED);
    assert.equal(host.interrupts.vms.get("vm-b")?.payload.toString(), "xive-state-of-vm-b");
    assert.equal(host.iommu.vms.get("vm-b")?.quiesced, false);
    assert.equal(host.iommu.vms.get("vm-b")?.guestMemoryPath, "guest-ram/vm-b.ram");
  });

  test("a save that fails after quiesce resumes the VM and leaves no snapshot", async () => {
    host.addVm("vm-c");
    host.iommu.failures.set(
      "export",
      new VplaneError({ code: "INTERNAL", reason: "INJECTED", message: "export fails" }),
    );
    const { progress } = await save("vm-c", "snap-c");
    assert.equal(progress.phase, Phase.PHASE_FAILED);
    assert.equal(progress.failedPhase, Phase.PHASE_TRANSFERRING_DEVICE_STATE);
    assert.equal(progress.error?.reason, "INJECTED");
    assert.equal(host.interrupts.vms.get("vm-c")?.quiesced, false);
    await assert.rejects(
      unaryCall(host.client.getSnapshot.bind(host.client), { name: "snapshots/snap-c" }, { timeoutMs: 5000 }),
      { code: "NOT_FOUND" },
    );
  });
});

describe("refused snapshots: nothing is imported", () => {
  let file: string;
  let good: Buffer;
  before(async () => {
    host.addVm("vm-r");
    await save("vm-r", "snap-r");
    host.interrupts.vms.delete("vm-r");
    host.iommu.vms.delete("vm-r");
    file = join(host.dataDir, "snapshots", "snap-r.vpsnap");
    good = readFileSync(file);
  });

  const cases: [string, (b: Buffer) => Buffer, string, string][] = [
    [
      "an unknown format version",
      (b) => {
        const c = Buffer.from(b);
        c.writeUInt32BE(2, 8);
        return c;
      },
      "FAILED_PRECONDITION",
      "SNAPSHOT_VERSION_UNSUPPORTED",
    ],
    [
      "a bad checksum (one body byte flipped)",
      (b) => {
        const c = Buffer.from(b);
        c[25] = c[25]! ^ 0xff;
        return c;
      },
      "DATA_LOSS",
      "SNAPSHOT_CHECKSUM_MISMATCH",
    ],
    ["a truncated file", (b) => b.subarray(0, b.length - 7), "DATA_LOSS", "SNAPSHOT_TRUNCATED"],
    ["a file shorter than the header", (b) => b.subarray(0, 10), "DATA_LOSS", "SNAPSHOT_TRUNCATED"],
    ["trailing bytes", (b) => Buffer.concat([b, Buffer.from([0])]), "DATA_LOSS", "SNAPSHOT_TRAILING_BYTES"],
    ["not a snapshot", (b) => Buffer.alloc(b.length, 0x41), "INVALID_ARGUMENT", "SNAPSHOT_NOT_A_SNAPSHOT"],
    ["an oversized file", () => Buffer.alloc(65537), "RESOURCE_EXHAUSTED", "SNAPSHOT_TOO_LARGE"],
  ];
  for (const [what, damage, code, reason] of cases) {
    test(`${what} → ${code} ${reason}`, async () => {
      writeFileSync(file, damage(good));
      const error = await restoreFails("snapshots/snap-r", "vm-r");
      assert.equal(error.code, code);
      assert.equal(error.reason, reason);
      assert.equal(host.interrupts.vms.has("vm-r"), false);
      assert.equal(host.iommu.vms.has("vm-r"), false);
      writeFileSync(file, good);
    });
  }

  test("another VM's snapshot → FAILED_PRECONDITION SNAPSHOT_OF_ANOTHER_VM", async () => {
    const started = await unaryCall(
      host.client.restoreSnapshot.bind(host.client),
      { snapshot: "snapshots/snap-r", vm: "vm-other", guestMemory: undefined, requestId: "" },
      { timeoutMs: 5000 },
    );
    const { progress } = await host.finish(started);
    assert.equal(progress.phase, Phase.PHASE_FAILED);
    assert.equal(progress.errorCode, "FAILED_PRECONDITION");
    assert.equal(progress.error?.reason, "SNAPSHOT_OF_ANOTHER_VM");
    assert.equal(host.interrupts.vms.has("vm-other"), false);
  });

  test("the intact snapshot still restores", async () => {
    const started = await unaryCall(
      host.client.restoreSnapshot.bind(host.client),
      { snapshot: "snapshots/snap-r", vm: "vm-r", guestMemory: undefined, requestId: "" },
      { timeoutMs: 5000 },
    );
    assert.equal((await host.finish(started)).progress.phase, Phase.PHASE_COMPLETED);
  });
});
