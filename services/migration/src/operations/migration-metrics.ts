import { OperationKind, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import type { Counter, Histogram, ServiceMetrics } from "@vplane/service-kit";

/** Seconds, from a snapshot of a small VM to a live migration of a large one's RAM. */
const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** "PHASE_COPYING_RAM" → "copying_ram"; "OPERATION_KIND_MIGRATE" → "migrate". */
const phaseLabel = (phase: Phase) => (Phase[phase] ?? String(phase)).replace(/^PHASE_/, "").toLowerCase();
const kindLabel = (kind: OperationKind) =>
  (OperationKind[kind] ?? String(kind)).replace(/^OPERATION_KIND_/, "").toLowerCase();

/**
 * The migration service's own metrics beside the per-RPC ones: how long each phase of a save,
 * restore or live migration took, how long the devices were paused (a migration's downtime),
 * and how operations ended.
 */
export class MigrationMetrics {
  private readonly phases: Histogram<"kind" | "phase">;
  private readonly downtime: Histogram<"kind">;
  private readonly operations: Counter<"kind" | "outcome">;

  constructor(metrics: ServiceMetrics) {
    this.phases = metrics.histogram({
      name: "vplane_migration_phase_duration_seconds",
      help: "time an operation spent in a phase (setting_up, copying_ram, precopying_device_state, quiescing, transferring_device_state, switching_over), by kind",
      labelNames: ["kind", "phase"],
      buckets: PHASE_BUCKETS,
    });
    this.downtime = metrics.histogram({
      name: "vplane_migration_downtime_seconds",
      help: "devices paused from quiesce to resume, per completed operation that paused them",
      labelNames: ["kind"],
    });
    this.operations = metrics.counter({
      name: "vplane_migration_operations_total",
      help: "operations ended, by kind and outcome (completed, failed, cancelled)",
      labelNames: ["kind", "outcome"],
    });
  }

  phaseEnded(kind: OperationKind, phase: Phase, seconds: number): void {
    this.phases.observe({ kind: kindLabel(kind), phase: phaseLabel(phase) }, seconds);
  }

  /** The operation reached `final` (COMPLETED, FAILED or CANCELLED) with `downtimeMs` recorded. */
  ended(kind: OperationKind, final: Phase, downtimeMs: bigint): void {
    this.operations.inc({ kind: kindLabel(kind), outcome: phaseLabel(final) });
    if (final === Phase.PHASE_COMPLETED && downtimeMs > 0n)
      this.downtime.observe({ kind: kindLabel(kind) }, Number(downtimeMs) / 1000);
  }
}
