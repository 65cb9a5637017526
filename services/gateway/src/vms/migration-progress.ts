// How a live migration's progress, as the source host's migration service reports it
// (vplane.migration.v1.OperationProgress), reads in the gateway's operation: the phase as a step,
// a percentage, a one-line message, the mirrored status, and the error of a failed migration.
import { Phase, type OperationProgress } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { VplaneError, statusCodeOf, statusNameOf, type StatusCodeName } from "@vplane/service-kit";
import type { MigrateRequest, MigrationPhase, MigrationStatus } from "../schemas/migration-schema.js";

/** The phases a migration goes through before its end, in order. */
const RUNNING_PHASES: readonly Phase[] = [
  Phase.PHASE_SETTING_UP,
  Phase.PHASE_COPYING_RAM,
  Phase.PHASE_PRECOPYING_DEVICE_STATE,
  Phase.PHASE_QUIESCING,
  Phase.PHASE_TRANSFERRING_DEVICE_STATE,
  Phase.PHASE_SWITCHING_OVER,
];

export function phaseName(phase: Phase): MigrationPhase {
  const name = Phase[phase]?.replace(/^PHASE_/, "");
  // UNSPECIFIED (never reported for a started migration) reads as its first phase.
  return (name && name !== "UNSPECIFIED" ? name : "SETTING_UP") as MigrationPhase;
}

export const MIGRATE_STEP = {
  start: "migration.StartMigration",
  phase: (phase: Phase) => `migration.${phaseName(phase)}`,
  registry: "registry.commit",
} as const;

/** The steps a migrate operation lists before it starts (no RAM copy when the VMM moves RAM). */
export function migrateSteps(request: MigrateRequest): string[] {
  return [
    MIGRATE_STEP.start,
    ...RUNNING_PHASES.filter((p) => !(request.vmmMovesRam && p === Phase.PHASE_COPYING_RAM)).map(
      MIGRATE_STEP.phase,
    ),
    MIGRATE_STEP.registry,
  ];
}

/** The running phases before `phase` (those a migration now in `phase` has finished). */
export function phasesBefore(phase: Phase): Phase[] {
  const index = RUNNING_PHASES.indexOf(phase);
  return index < 0 ? [...RUNNING_PHASES] : RUNNING_PHASES.slice(0, index);
}

/**
 * Percent of the gateway operation: RAM copy takes most of it, device pre-copy the next; the
 * registry commit makes 100.
 */
export function percentOf(progress: OperationProgress): number {
  switch (progress.phase) {
    case Phase.PHASE_COPYING_RAM: {
      const total = Number(progress.ramBytesTotal);
      const done = total > 0 ? Number(progress.ramBytesTransferred) / total : 0;
      return 5 + Math.floor(75 * Math.min(1, done));
    }
    case Phase.PHASE_PRECOPYING_DEVICE_STATE:
      return 81;
    case Phase.PHASE_QUIESCING:
      return 82;
    case Phase.PHASE_TRANSFERRING_DEVICE_STATE:
      return 88;
    case Phase.PHASE_SWITCHING_OVER:
      return 94;
    case Phase.PHASE_COMPLETED:
      return 97;
    default:
      return 3;
  }
}

/** The mirrored status after `progress` (the fields the gateway set itself are kept). */
export function statusAfter(status: MigrationStatus, progress: OperationProgress): MigrationStatus {
  const { failedPhase: _previous, ...rest } = status;
  return {
    ...rest,
    operation: progress.name || status.operation,
    phase: phaseName(progress.phase),
    ramBytesTotal: Number(progress.ramBytesTotal),
    ramBytesTransferred: Number(progress.ramBytesTransferred),
    deviceStateBytes: Number(progress.deviceStateBytes),
    devicePrecopyBytes: Number(progress.devicePrecopyBytes),
    devicePrecopyIterations: progress.devicePrecopyIterations,
    deviceDirtyBytes: Number(progress.deviceDirtyBytes),
    elapsedMs: Number(progress.elapsedMs),
    downtimeMs: Number(progress.downtimeMs),
    dirtyPages: progress.dirtyPages.length,
    cancelRequested: progress.cancelRequested,
    ...(progress.phase === Phase.PHASE_FAILED ? { failedPhase: phaseName(progress.failedPhase) } : {}),
  };
}

const mib = (bytes: bigint) => `${(Number(bytes) / 2 ** 20).toFixed(1)} MiB`;

/** One line for the progress event. */
export function describeProgress(progress: OperationProgress): string {
  const elapsed = `elapsed ${progress.elapsedMs} ms`;
  switch (progress.phase) {
    case Phase.PHASE_COPYING_RAM:
      return `copying guest RAM: ${mib(progress.ramBytesTransferred)} of ${mib(progress.ramBytesTotal)}, ${elapsed}`;
    case Phase.PHASE_PRECOPYING_DEVICE_STATE:
      return `pre-copying device state while the VM runs: ${progress.devicePrecopyIterations} iteration(s), ${progress.devicePrecopyBytes} bytes, ${progress.deviceDirtyBytes} bytes still to send, ${elapsed}`;
    case Phase.PHASE_QUIESCING:
      return `pausing the devices (downtime starts), ${elapsed}`;
    case Phase.PHASE_TRANSFERRING_DEVICE_STATE:
      return `moving device state (${progress.deviceStateBytes} bytes, ${progress.dirtyPages.length} dirty pages), ${elapsed}`;
    case Phase.PHASE_SWITCHING_OVER:
      return `switching over to the destination, ${elapsed}`;
    case Phase.PHASE_COMPLETED:
      return `migration completed: downtime ${progress.downtimeMs} ms, ${mib(progress.ramBytesTransferred)} of RAM, ${progress.dirtyPages.length} dirty pages, ${elapsed}`;
    case Phase.PHASE_FAILED:
      return `migration failed in ${phaseName(progress.failedPhase)}: ${progress.errorCode} ${progress.error?.reason ?? ""}: ${progress.errorMessage}`;
    case Phase.PHASE_CANCELLED:
      return `migration cancelled before switchover, ${elapsed}`;
    default:
      return `setting up: reserving the VM on the destination, ${elapsed}`;
  }
}

/** The error a failed (or cancelled) migration reports, as a VplaneError. */
export function errorOf(progress: OperationProgress): VplaneError {
  // The service writes the gRPC status name; an unknown one reads as UNKNOWN.
  const code = statusNameOf(statusCodeOf(progress.errorCode as StatusCodeName) ?? -1);
  const detail = progress.error;
  return new VplaneError({
    code: code === "OK" ? "UNKNOWN" : code,
    reason: detail?.reason || code,
    message: progress.errorMessage || `migration ${phaseName(progress.phase).toLowerCase()}`,
    errno: detail?.errno,
    hcallReturnCode: detail?.hcallReturnCode === undefined ? undefined : Number(detail.hcallReturnCode),
    field: detail?.field || undefined,
    batchIndex: detail?.batchIndex,
  });
}
