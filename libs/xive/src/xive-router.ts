import { EAS_HI_END_INDEX, EAS_HI_VALID, EAS_LO_EISN, EAS_LO_MASKED } from "./eas.js";
import {
  END_W0_ENQUEUE,
  END_W0_UCOND_NOTIFY,
  END_W0_VALID,
  END_W6_NVT_INDEX,
  END_W7_F0_PRIORITY_SHIFT,
  SPAPR_NVT_BASE,
  type EndTable,
} from "./end-table.js";
import type { SourceBlock } from "./source-table.js";
import type { ThreadContext } from "./thread-context.js";

/** What became of one trigger (returned by the device side, counted by the router). */
export const TriggerOutcome = {
  /** No such source (never created, or out of range). */
  NO_SOURCE: 0,
  /** The source's PQ did not forward (coalesced in Q, or PQ=01 off). */
  COALESCED: 1,
  /** Forwarded, but the EAS is masked: dropped silently, P stays set (xive.md §4.2 step 2). */
  MASKED: 2,
  /** Forwarded, but the EAS or END is invalid: dropped and logged (xive.md §4.2 steps 2-3). */
  INVALID_ROUTE: 3,
  /** Enqueued, but the END's ESn coalesced the notification (xive.md §4.2 step 7). */
  END_COALESCED: 4,
  /** Enqueued, but no vCPU context matches the END's NVT (xive.md §4.2 steps 8-11). */
  NO_TARGET: 5,
  /** Enqueued and the vCPU's IPB updated (the exception may or may not be raised, per CPPR). */
  DELIVERED: 6,
} as const;
export type TriggerOutcomeValue = (typeof TriggerOutcome)[keyof typeof TriggerOutcome];

/** Counters per outcome, cumulative since the device was created. */
export interface RouterCounters {
  forwarded: number;
  masked: number;
  invalidRoute: number;
  endCoalesced: number;
  noTarget: number;
  delivered: number;
}

/**
 * The virtualization controller's routing (QEMU's XiveRouter): a forwarded event goes through
 * its EAS to an END, is written into the END's event queue and presented to the END's vCPU
 * (xive.md §4.2). No allocation on this path.
 */
export class XiveRouter {
  readonly counters: RouterCounters = {
    forwarded: 0,
    masked: 0,
    invalidRoute: 0,
    endCoalesced: 0,
    noTarget: 0,
    delivered: 0,
  };

  constructor(
    private readonly contexts: (ThreadContext | undefined)[],
    public ends: EndTable | undefined,
  ) {}

  /** xive_router_notify for the source at `index` of `block` (its PQ already forwarded). */
  notify(block: SourceBlock, index: number): TriggerOutcomeValue {
    const counters = this.counters;
    counters.forwarded++;
    const hi = block.easHi[index]!;
    const lo = block.easLo[index]!;
    if ((hi & EAS_HI_VALID) === 0) {
      counters.invalidRoute++;
      return TriggerOutcome.INVALID_ROUTE;
    }
    if (lo & EAS_LO_MASKED) {
      counters.masked++;
      return TriggerOutcome.MASKED;
    }
    return this.endNotify(hi & EAS_HI_END_INDEX, lo & EAS_LO_EISN);
  }

  /** xive_router_end_notify on sPAPR (block 0; no escalation is ever configured there). */
  endNotify(endIndex: number, data: number): TriggerOutcomeValue {
    const counters = this.counters;
    const ends = this.ends;
    if (ends === undefined || endIndex >= ends.size) {
      counters.invalidRoute++;
      return TriggerOutcome.INVALID_ROUTE;
    }
    const w0 = ends.w0[endIndex]!;
    if ((w0 & END_W0_VALID) === 0) {
      counters.invalidRoute++;
      return TriggerOutcome.INVALID_ROUTE;
    }
    if (w0 & END_W0_ENQUEUE) ends.enqueue(endIndex, data);
    const priority = (ends.w7[endIndex]! >>> END_W7_F0_PRIORITY_SHIFT) & 0xff;
    // Format 0 with priority 0xFF: the END is masked (step 6).
    if (priority === 0xff) {
      counters.masked++;
      return TriggerOutcome.MASKED;
    }
    if ((w0 & END_W0_UCOND_NOTIFY) === 0 && !ends.triggerEsn(endIndex)) {
      counters.endCoalesced++;
      return TriggerOutcome.END_COALESCED;
    }
    // Steps 8-9: the NVT is valid iff a vCPU with id nvt - 0x400 exists; its OS CAM matches.
    const nvt = ends.w6[endIndex]! & END_W6_NVT_INDEX;
    const context = this.contexts[nvt - SPAPR_NVT_BASE];
    if (context === undefined || !context.matchesOs(nvt)) {
      // Step 11: no match; BACKLOG is never set on sPAPR (write_nvt is unreachable there).
      counters.noTarget++;
      return TriggerOutcome.NO_TARGET;
    }
    context.presentOs(priority);
    counters.delivered++;
    return TriggerOutcome.DELIVERED;
  }
}
