import type { SmmuEvent } from "./event-record.js";
import type { PageRequest } from "./page-request-queue.js";

/**
 * How a transaction ended: translated (address valid); fault (event says why; recorded says
 * whether it went to the event queue); aborted silently (STE abort config, no event);
 * page-request (a recoverable fault now waiting for the VMM, retry after SUCCESS); doorbell (the
 * output IPA is the bound MSI doorbell, address holds it).
 */
export type TranslationOutcome = "translated" | "fault" | "aborted" | "page-request" | "doorbell";

/** The result of one translation. Reusable: translateInto() overwrites it, so the hot path allocates nothing. */
export class TranslationResult {
  outcome: TranslationOutcome = "translated";
  /** translated: output address in the guest-RAM backing; doorbell: the doorbell IPA. */
  address = 0;
  /** Size (log2) of the mapping that served the translation: the DMA may continue to its end. */
  sizeBits = 0;
  /** Permissions the translation grants (READ 1, WRITE 2), both stages combined. */
  perm = 0;
  /** Served from the IOTLB. */
  hit = false;
  event: SmmuEvent | undefined = undefined;
  recorded = false;
  pageRequest: PageRequest | undefined = undefined;

  reset(): void {
    this.outcome = "translated";
    this.address = 0;
    this.sizeBits = 0;
    this.perm = 0;
    this.hit = false;
    this.event = undefined;
    this.recorded = false;
    this.pageRequest = undefined;
  }
}
