// A migration service that stops in the middle of a save or a migration (its operations live in
// memory) must not leave the VM paused for ever: the pause is journalled before it happens, and
// the next start resumes it, except where a live migration was already handing it over.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { unaryCall } from "@vplane/service-kit";
import { PausedVmJournal } from "../src/devices/paused-vm-journal.js";
import { TestHost } from "./test-host.js";

let source: TestHost;
let destination: TestHost;
before(async () => {
  [source, destination] = await Promise.all([TestHost.start(), TestHost.start()]);
});
after(() => Promise.all([source.stop(), destination.stop()]));

async function waitFor(condition: () => boolean | Promise<boolean>) {
  const until = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("condition not reached in 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("paused VMs survive a restart of the migration service", () => {
  test("a live migration journals the pause while the VM is paused and clears it once the VM is handed over", async () => {
    const journal = new PausedVmJournal(source.dataDir);
    source.addVm("vm-journal");
    let release!: () => void;
    destination.interrupts.holds.set("finishImport", new Promise<void>((r) => (release = r)));
    const operation = await unaryCall(
      source.client.startMigration.bind(source.client),
      {
        vm: "vm-journal",
        destination: destination.migration.address,
        guestMemory: undefined,
        vmmMovesRam: true,
        downtimeLimitMs: 0,
        noProgressTimeoutMs: 0,
        totalTimeoutMs: 0,
        requestId: "",
        destinationGuestMemory: { path: "vmm/ram", sizeBytes: 1n << 20n },
      },
      { timeoutMs: 5000 },
    );
    await source.reach(operation, Phase.PHASE_SWITCHING_OVER);
    await waitFor(() => destination.interrupts.calls.includes("finishImport"));
    assert.deepEqual(
      (await journal.entries()).map((e) => [e.vm, e.state, e.operation]),
      [["vm-journal", "paused", operation.name]],
    );
    destination.interrupts.holds.delete("finishImport");
    release();
    const { progress } = await source.finish(operation);
    assert.equal(progress.phase, Phase.PHASE_COMPLETED, progress.errorMessage);
    assert.deepEqual(await journal.entries(), []);
  });

  test("on start: a VM left paused is resumed, one caught committing stays paused, one without devices is forgotten", async () => {
    const journal = new PausedVmJournal(source.dataDir);
    for (const vm of ["vm-left-paused", "vm-handing-over"]) {
      source.addVm(vm);
      source.interrupts.vms.get(vm)!.quiesced = true;
      source.iommu.vms.get(vm)!.quiesced = true;
    }
    await journal.paused("vm-left-paused", "operations/op-died");
    await journal.committing("vm-handing-over", "operations/op-died-too");
    await journal.paused("vm-gone", "operations/op-old");
    await source.restartMigrationService();
    await waitFor(async () => (await journal.entries()).length === 0);
    assert.equal(source.interrupts.vms.get("vm-left-paused")?.quiesced, false);
    assert.equal(source.iommu.vms.get("vm-left-paused")?.quiesced, false);
    assert.equal(source.interrupts.vms.get("vm-handing-over")?.quiesced, true);
    assert.equal(source.iommu.vms.get("vm-handing-over")?.quiesced, true);
  });
});
