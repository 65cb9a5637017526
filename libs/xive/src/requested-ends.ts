import { EAS_HI_END_INDEX } from "./eas.js";
import type { SourceTable } from "./source-table.js";

/**
 * The END QEMU's EAT holds for the sources the KVM device routes elsewhere. QEMU's
 * H_INT_SET_SOURCE_CONFIG hands the END the guest asked for to the device (SOURCE_CONFIG with
 * that server and priority, hw/intc/spapr_xive_kvm.c kvmppc_xive_set_source_config) and, once
 * the device took it, keeps that END in its EAT (hw/intc/spapr_xive.c h_int_set_source_config),
 * which H_INT_GET_SOURCE_CONFIG answers from. The device may have put the source on another
 * vCPU's queue at that priority when the asked one has no page or no free slot (Linux
 * arch/powerpc/kvm/book3s_xive.c kvmppc_xive_select_target) and routes it there, comparing the
 * next SOURCE_CONFIG with the server it picked (book3s_xive_native.c
 * kvmppc_xive_native_update_source_config). The hypercalls and the device share one EAS table,
 * which holds the device's routing; this keeps QEMU's END beside it for the few sources moved,
 * each with the EAS words the device had then: once anything else changed the source's routing
 * (a device call, a reset), QEMU's END is no longer kept apart.
 *
 * QEMU's migration stream carries its EAT, not the device's pick (KVM has no SOURCE_CONFIG get:
 * book3s_xive_native.c kvmppc_xive_native_get_attr answers EQ_CONFIG only), and its post_load
 * hands each EAT END to a fresh device's SOURCE_CONFIG (spapr_xive_kvm.c kvmppc_xive_post_load),
 * which selects again: the saved state carries these ENDs (XiveSourceState.requestedEnd) and a
 * restore routes from them (restore-targeting.ts), keeping here the ones it moves.
 */
export class RequestedEnds {
  private readonly byLisn = new Map<number, { end: number; easHi: number; easLo: number }>();

  /** Entries kept, some maybe no longer valid (their source's EAS changed since). */
  get size(): number {
    return this.byLisn.size;
  }

  /** After the device took a SOURCE_CONFIG for `requestedEnd`: kept if it routes it elsewhere. */
  record(sources: SourceTable, lisn: number, requestedEnd: number): void {
    const easHi = sources.easHi(lisn);
    if ((easHi & EAS_HI_END_INDEX) === requestedEnd) this.byLisn.delete(lisn);
    else this.byLisn.set(lisn, { end: requestedEnd, easHi, easLo: sources.easLo(lisn) });
  }

  /** What puts `lisn`'s entry back as it is now (a configuration taken back). */
  snapshot(lisn: number): () => void {
    const kept = this.byLisn.get(lisn);
    return () => {
      if (kept === undefined) this.byLisn.delete(lisn);
      else this.byLisn.set(lisn, kept);
    };
  }

  forget(lisn: number): void {
    this.byLisn.delete(lisn);
  }

  clear(): void {
    this.byLisn.clear();
  }

  /** The END QEMU's EAT names for `lisn`: the one asked for while the device keeps its move. */
  endOf(sources: SourceTable, lisn: number): number {
    return this.endFor(lisn, sources.easHi(lisn), sources.easLo(lisn));
  }

  /** endOf for a source whose EAS words are `easHi` and `easLo`. */
  endFor(lisn: number, easHi: number, easLo: number): number {
    const kept = this.byLisn.get(lisn);
    if (kept === undefined) return easHi & EAS_HI_END_INDEX;
    if (kept.easHi === easHi && kept.easLo === easLo) return kept.end;
    this.byLisn.delete(lisn);
    return easHi & EAS_HI_END_INDEX;
  }

  /** The sources routed elsewhere than QEMU's END, and that END: lisn → END, ascending by lisn. */
  live(sources: SourceTable): Map<number, number> {
    const out = new Map<number, number>();
    for (const lisn of [...this.byLisn.keys()].sort((a, b) => a - b)) {
      const hi = sources.easHi(lisn);
      const end = this.endFor(lisn, hi, sources.easLo(lisn));
      if (end !== (hi & EAS_HI_END_INDEX)) out.set(lisn, end);
    }
    return out;
  }
}
