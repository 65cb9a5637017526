import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceError } from "@grpc/grpc-js";
import { Phase, type OperationProgress } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import type { WatchOperationResponse } from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import type { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { VplaneError, fromServiceError, toVplaneError } from "@vplane/service-kit";

export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set([
  Phase.PHASE_COMPLETED,
  Phase.PHASE_FAILED,
  Phase.PHASE_CANCELLED,
]);

export interface FollowOptions {
  /** Stops following (the migration itself goes on); the outcome is then `lost`. */
  signal: AbortSignal;
  /** Reopened streams in a row without a message before giving up; default 8. */
  reconnects?: number;
  /** Wait before reopening a broken stream, ms, times the attempt number; default 250. */
  reconnectDelayMs?: number;
}

/** How following ended: the terminal progress, or why it could not be learnt. */
export type FollowOutcome = { t: "ended"; progress: OperationProgress } | { t: "lost"; why: VplaneError };

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number";
}

/**
 * Follows an operation of a migration service through WatchOperation to its end, handing each
 * state to `onProgress` in order, one at a time. A stream that breaks (or ends early) is reopened
 * after the last sequence seen, so nothing is missed or repeated. `lost` when the outcome cannot
 * be learnt: the operation is gone (that service keeps operations in memory, so a restart forgets
 * them), the service stayed unreachable, or `signal` aborted.
 */
export async function followMigration(
  client: MigrationServiceClient,
  name: string,
  onProgress: (progress: OperationProgress) => Promise<void>,
  options: FollowOptions,
): Promise<FollowOutcome> {
  const reconnects = options.reconnects ?? 8;
  const delayMs = options.reconnectDelayMs ?? 250;
  let after = 0n;
  let failures = 0;
  let why = new VplaneError({ code: "CANCELLED", reason: "WATCH_STOPPED", message: "stopped following" });
  while (!options.signal.aborted) {
    const call = client.watchOperation({ name, afterSequence: after });
    const stop = () => call.cancel();
    options.signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const message of call as AsyncIterable<WatchOperationResponse>) {
        const progress = message.progress;
        if (!progress) continue;
        await onProgress(progress);
        // Only once handled: a reopened stream hands over again what failed to be handled.
        after = progress.sequence;
        failures = 0;
        if (TERMINAL_PHASES.has(progress.phase)) return { t: "ended", progress };
      }
      why = new VplaneError({
        code: "UNAVAILABLE",
        reason: "WATCH_ENDED_EARLY",
        message: `the watch of ${name} ended before the operation did`,
      });
    } catch (error) {
      why = isServiceError(error) ? fromServiceError(error) : toVplaneError(error);
      if (why.code === "NOT_FOUND") return { t: "lost", why };
    } finally {
      options.signal.removeEventListener("abort", stop);
      call.cancel();
    }
    if (options.signal.aborted || ++failures > reconnects) break;
    await sleep(delayMs * failures, undefined, { signal: options.signal }).catch(() => undefined);
  }
  return { t: "lost", why };
}
