import { eventName, type TranslationResult } from "@vplane/smmuv3";
import { EventStreamMetrics, type Counter, type ServiceMetrics } from "@vplane/service-kit";
import type { LoggedEvent } from "./event-log.js";
import type { DmaOutcome } from "./smmu-backend.js";

/**
 * The iommu service's own metrics beside the per-RPC ones: translations (Translate calls and
 * the page walks of DMAs) by outcome and whether the IOTLB served them (the hit ratio is hit / all translated), DMAs by outcome, the records
 * the SMMUs appended to their event streams (faults by event name, page requests, event-queue
 * overflows), and the health of those streams.
 */
export class IommuMetrics {
  private readonly translations: Counter<"outcome" | "iotlb">;
  private readonly dmas: Counter<"direction" | "outcome">;
  private readonly faults: Counter<"event">;
  private readonly pageRequests: Counter;
  private readonly queueOverflows: Counter;
  readonly eventStream: EventStreamMetrics;

  constructor(metrics: ServiceMetrics) {
    this.translations = metrics.counter({
      name: "vplane_iommu_translations_total",
      help: "translations (each Translate call and each page walk of DmaRead/DmaWrite) by outcome (translated, fault, aborted, page-request, doorbell) and iotlb (hit: served from the IOTLB, miss: walked or not cached)",
      labelNames: ["outcome", "iotlb"],
    });
    this.dmas = metrics.counter({
      name: "vplane_iommu_dmas_total",
      help: "DmaRead/DmaWrite calls by direction and outcome (completed, or the translation outcome that stopped it)",
      labelNames: ["direction", "outcome"],
    });
    this.faults = metrics.counter({
      name: "vplane_iommu_faults_total",
      help: "event records the SMMUs appended to their event streams, by event name (F_TRANSLATION, C_BAD_STE, ...)",
      labelNames: ["event"],
    });
    this.pageRequests = metrics.counter({
      name: "vplane_iommu_page_requests_total",
      help: "PRI page requests the SMMUs appended to their event streams",
    });
    this.queueOverflows = metrics.counter({
      name: "vplane_iommu_event_queue_overflows_total",
      help: "SMMU event-queue overflows (records the hardware queue dropped; iommufd's LOST_EVENTS)",
    });
    this.eventStream = new EventStreamMetrics(
      metrics,
      "vplane_iommu_event_stream",
      "SMMU event-stream messages",
    );
  }

  translated(result: TranslationResult): void {
    this.translations.inc({ outcome: result.outcome, iotlb: result.hit ? "hit" : "miss" });
  }

  dma(direction: "read" | "write", result: DmaOutcome): void {
    this.dmas.inc({ direction, outcome: result.outcome });
  }

  /** An SMMU's event log took a message. */
  logged(message: LoggedEvent): void {
    if (message.kind === "event") this.faults.inc({ event: eventName(message.queued.event.id) });
    else if (message.kind === "page-request") this.pageRequests.inc();
    else this.queueOverflows.inc();
  }
}
