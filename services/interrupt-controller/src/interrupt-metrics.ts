import { EventStreamMetrics, type Counter, type ServiceMetrics } from "@vplane/service-kit";
import type { TriggerCounts } from "./controller-backend.js";

const OUTCOMES = ["delivered", "coalesced", "masked", "dropped"] as const;

/**
 * The interrupt controller's own metrics beside the per-RPC ones: what became of the triggers
 * VMMs send (TriggerSources, EsbAccess trigger and inject stores, SetLsiLevel asserts: delivered
 * to a presenter, coalesced by PQ or ESn, masked by the EAS or END, dropped for a missing
 * source, an invalid route or no target vCPU) and the health
 * of the vCPU signal streams. XIVE event queues have no overflow to count: the END writes and
 * wraps without looking at what the guest consumed (xive.md §4.2; QEMU's xive_end_enqueue).
 */
export class InterruptMetrics {
  private readonly triggers: Record<(typeof OUTCOMES)[number], Counter.Internal>;
  readonly signalStream: EventStreamMetrics;

  constructor(metrics: ServiceMetrics) {
    const triggers = metrics.counter({
      name: "vplane_interrupt_triggers_total",
      help: "source triggers (TriggerSources, EsbAccess trigger/inject stores, SetLsiLevel asserts) by outcome: delivered, coalesced, masked, dropped",
      labelNames: ["outcome"],
    });
    this.triggers = Object.fromEntries(
      OUTCOMES.map((outcome) => [outcome, triggers.labels({ outcome })]),
    ) as InterruptMetrics["triggers"];
    this.signalStream = new EventStreamMetrics(
      metrics,
      "vplane_interrupt_signal_stream",
      "vCPU exception-line changes",
    );
  }

  countTriggers(counts: TriggerCounts): void {
    for (const outcome of OUTCOMES) if (counts[outcome] > 0) this.triggers[outcome].inc(counts[outcome]);
  }
}
