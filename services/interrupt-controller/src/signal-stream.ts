import type {
  WatchVcpuSignalsRequest,
  WatchVcpuSignalsResponse,
} from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { VplaneError, type CallContext, type EventStreamMetrics } from "@vplane/service-kit";
import type { ControllerRegistry } from "./controller-registry.js";
import { LIMITS } from "./service-limits.js";

/**
 * WatchVcpuSignals: the controller's exception-line changes from `resume_after + 1` (or from the
 * next event), each with its sequence number; a marker with `dropped` says how many events the
 * stream cannot deliver (older than the buffer, or the stream fell behind). Ends when the caller
 * cancels or the controller is deleted. `metrics` sees each watcher's backlog and losses.
 */
export function watchVcpuSignals(registry: ControllerRegistry, metrics: EventStreamMetrics) {
  return async (
    request: WatchVcpuSignalsRequest,
    send: (message: WatchVcpuSignalsResponse) => Promise<void>,
    context: CallContext,
  ): Promise<void> => {
    const entry = registry.require(request.name);
    const unavailable = entry.backend.signalsUnavailable;
    if (unavailable) throw new VplaneError({ code: "UNIMPLEMENTED", ...unavailable });
    if (entry.watchers >= LIMITS.maxWatchersPerController) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "TOO_MANY_WATCHERS",
        message: `at most ${LIMITS.maxWatchersPerController} signal streams per controller`,
      });
    }
    const log = entry.signals;
    let next = request.resumeAfter === 0n ? log.lastSequence + 1 : Number(request.resumeAfter) + 1;
    entry.watchers++;
    try {
      while (!context.signal.aborted) {
        if (registry.require(request.name) !== entry) return;
        const record = log.read(next);
        if (record === undefined) {
          await log.waitForNext(context.signal);
          continue;
        }
        if (record.kind === "dropped") {
          await send({
            sequence: record.sequence,
            server: 0,
            raised: false,
            dropped: record.count,
            time: new Date(),
          });
          metrics.lost(Number(record.count));
          next = Number(record.sequence);
          continue;
        }
        await send({
          sequence: record.sequence,
          server: record.server,
          raised: record.raised,
          dropped: 0n,
          time: new Date(record.timeMs),
        });
        metrics.sent(log.lastSequence - next);
        next++;
      }
    } catch (error) {
      if (context.signal.aborted) return;
      if (error instanceof VplaneError && error.reason === "CONTROLLER_NOT_FOUND") return;
      throw error;
    } finally {
      entry.watchers--;
    }
  };
}
