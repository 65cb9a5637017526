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
 * (a device call, an import, a reset), QEMU's END is no longer kept apart.
 */
export class RequestedEnds {
  private readonly byLisn = new Map<number, { end: number; easHi: number; easLo: number }>();

  /** After the device took a SOURCE_CONFIG for `requestedEnd`: kept if it routes it elsewhere. */
  record(sources: SourceTable, lisn: number, requestedEnd: number): void {
    const easHi = sources.easHi(lisn);
    if ((easHi & EAS_HI_END_INDEX) === requestedEnd) this.byLisn.delete(lisn);
    else this.byLisn.set(lisn, { end: requestedEnd, easHi, easLo: sources.easLo(lisn) });
  }

  forget(lisn: number): void {
    this.byLisn.delete(lisn);
  }

  clear(): void {
    this.byLisn.clear();
  }

  /** The END QEMU's EAT names for `lisn`: the one asked for while the device keeps its move. */
  endOf(sources: SourceTable, lisn: number): number {
    const easHi = sources.easHi(lisn);
    const kept = this.byLisn.get(lisn);
    if (kept === undefined) return easHi & EAS_HI_END_INDEX;
    if (kept.easHi === easHi && kept.easLo === sources.easLo(lisn)) return kept.end;
    this.byLisn.delete(lisn);
    return easHi & EAS_HI_END_INDEX;
  }
}
