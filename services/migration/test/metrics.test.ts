import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { sampleValue, scrapeMetrics } from "@vplane/service-kit/testing";
import { TestHost } from "./test-host.js";

describe("metrics (VPLANE_MIGRATION_METRICS_ADDR): phase durations, downtime, outcomes", () => {
  let source: TestHost;
  let destination: TestHost;
  before(async () => {
    [source, destination] = await Promise.all([
      TestHost.start({ VPLANE_MIGRATION_METRICS_ADDR: "127.0.0.1:0" }),
      TestHost.start(),
    ]);
  });
  after(() => Promise.all([source.stop(), destination.stop()]));

  it("times every phase a live migration went through, its downtime, and counts it completed", async () => {
    const memory = source.addVm("metered");
    const started = await source.startMigration({
      vm: "metered",
      destination: destination.migration.address,
      guestMemory: { path: memory.path, sizeBytes: memory.sizeBytes },
    });
    const { progress } = await source.finish(started);
    assert.equal(progress.phase, Phase.PHASE_COMPLETED);

    const text = await scrapeMetrics(source.migration.metricsAddress!);
    const migrate = { kind: "migrate" };
    for (const phase of [
      "setting_up",
      "copying_ram",
      "quiescing",
      "transferring_device_state",
      "switching_over",
    ])
      assert.equal(
        sampleValue(text, "vplane_migration_phase_duration_seconds_count", { ...migrate, phase }),
        1,
        phase,
      );
    assert.equal(sampleValue(text, "vplane_migration_downtime_seconds_count", migrate), 1);
    assert.equal(
      sampleValue(text, "vplane_migration_downtime_seconds_sum", migrate),
      Number(progress.downtimeMs) / 1000,
      "the downtime the operation reported",
    );
    assert.equal(
      sampleValue(text, "vplane_migration_operations_total", { ...migrate, outcome: "completed" }),
      1,
    );
    const start = { grpc_service: "vplane.migration.v1.MigrationService", grpc_method: "StartMigration" };
    assert.equal(sampleValue(text, "grpc_server_handled_total", { ...start, grpc_code: "OK" }), 1);
  });
});
