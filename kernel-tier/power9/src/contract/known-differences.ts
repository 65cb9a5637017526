/**
 * Where the native and the emulated backend still answer a contract step differently, each with
 * the kernel or QEMU source that explains it. Step names are unique: the comparison skips exactly
 * these steps; any other difference fails.
 */
export interface KnownDifference {
  step: string;
  why: string;
}

/**
 * VP_STATE of a vCPU that has never run, kept as a difference on purpose.
 *
 * The kernel's answer (Linux arch/powerpc/kvm/book3s_xive_native.c kvmppc_xive_native_get_vp) is
 * the OS word0/1 it saved when the vCPU last left a hardware thread, with the IPB that OPAL
 * backed up in the NVT ORed in: `xive_saved_state.w01 | cpu_to_be64(opal_state & TM_IPB_MASK)`.
 * A vCPU that never ran in KVM_RUN (the tier's, and every vCPU of a VM the service owns) keeps
 * the word KVM wrote at connect (00 00 00 00 ff 00 00 00), so events at priority 6 read as IPB
 * 02 with PIPR still 00; and kvmppc_xive_native_set_vp stores word0/1 only, leaving the NVT's
 * IPB to be merged into every later read (and into the thread at the next dispatch). PIPR is
 * not part of the saved state: the hardware recomputes it from the IPB whenever the context is
 * pushed (QEMU hw/intc/xive.c xive_tctx_need_resend).
 *
 * The model's vCPUs are dispatched: its thread contexts are the ones TimaAccess serves and
 * whose exception lines the service streams, so an event sets their IPB and PIPR at once. Its
 * answer is the kernel's for a vCPU that was running when the events came and has just been
 * pulled (the saved word is then the live TIMA word and the NVT holds nothing): the same IPB and
 * CPPR, the two fields the kernel's comment says matter, with a PIPR that is current. Seen:
 * after two events at priority 6 the kernel reads 00 00 02 00 ff 00 00 00, the model
 * 00 00 02 00 ff 00 00 06; after a set of 00 ff 00 00 00 00 00 ff the kernel reads
 * 00 ff 02 00 00 00 00 ff (the NVT's IPB again) and the model 00 ff 00 00 00 00 00 ff.
 *
 * What the model does follow: a VP state it is given (a set, or a migrated state) is dispatched
 * as the hardware dispatches it, PIPR recomputed and the exception presented when it beats CPPR
 * (thread-context.ts dispatchOs), so a native VP state with a stale PIPR migrates into the model
 * with its pending interrupt presented.
 */
const VP_STATE_OF_A_VCPU_NOT_RUNNING =
  "VP_STATE of a vCPU that never ran: the kernel answers its connect-time saved word0/1 with the NVT's backed-up IPB " +
  "ORed in and PIPR stale (book3s_xive_native.c kvmppc_xive_native_get_vp; set_vp leaves the NVT's IPB); the model's " +
  "vCPUs are dispatched (their TIMA is live), so it answers as the kernel does for a vCPU pulled after the events";

/**
 * The emulated backend answers the guest's hypercalls as QEMU's emulated XIVE does, the native
 * backend as QEMU does with the KVM XIVE device (QEMU hw/intc/spapr_xive.c: the same checks, then
 * its kvm_irqchip_in_kernel() branches hand the work to the device and answer H_HARDWARE when it
 * refuses). The emulated backend keeps QEMU's emulated answers: they are what QEMU gives a guest
 * on a host without the device, and the service's benchmarks build guests the KVM device would
 * refuse (eight queue priorities per vCPU).
 */
const QEMU_EMULATED_VERSUS_KVM = (what: string) =>
  `QEMU's emulated XIVE takes it; with the KVM XIVE device QEMU answers H_HARDWARE because ${what}`;

export const KNOWN_DIFFERENCES: readonly KnownDifference[] = [
  {
    step: "VP_STATE get server 0",
    why: VP_STATE_OF_A_VCPU_NOT_RUNNING,
  },
  {
    step: "VP_STATE get server 0 after set",
    why: VP_STATE_OF_A_VCPU_NOT_RUNNING,
  },
  {
    step: "exported state",
    why: `the exported state holds the VP state above (its bytes differ there only). ${VP_STATE_OF_A_VCPU_NOT_RUNNING}`,
  },
  {
    step: "imported: VP_STATE server 0",
    why: `the emulated target restores the VP state the native origin exported (the NVT's IPB merged in) and dispatches it: PIPR 6 beats CPPR 0xFF, NSR 0x80. ${VP_STATE_OF_A_VCPU_NOT_RUNNING}`,
  },
  {
    step: "H_INT SET_QUEUE_CONFIG 1/6 4 KiB",
    why: QEMU_EMULATED_VERSUS_KVM(
      "the device takes 64 KiB queues only (book3s_xive_native.c xive_native_validate_queue_size: EINVAL)",
    ),
  },
  {
    step: "H_INT SET_QUEUE_CONFIG 1/6 without ALWAYS_NOTIFY",
    why: QEMU_EMULATED_VERSUS_KVM(
      "the device needs ALWAYS_NOTIFY (kvmppc_xive_native_set_queue_config: END ESB notification is not supported, EINVAL)",
    ),
  },
  {
    step: "H_INT SET_SOURCE_CONFIG 16 -> 0/6 with no queue",
    why: QEMU_EMULATED_VERSUS_KVM(
      "the device routes a source only to a queue with a page (book3s_xive.c kvmppc_xive_select_target: EBUSY, with a WARNING from xive_try_pick_queue)",
    ),
  },
  {
    step: "H_INT SET_QUEUE_CONFIG 0/5 (a second queue of vCPU 0)",
    why: QEMU_EMULATED_VERSUS_KVM(
      "a POWER9 vCPU has one escalation interrupt, held by its priority-6 queue (book3s_xive.c kvmppc_xive_attach_escalation: request_irq EBUSY; the native backend refuses it before the kernel, see refuseSecondQueue)",
    ),
  },
  {
    step: "H_INT ESB load-EOI 17 while asserted",
    why:
      "an LSI's load-EOI: QEMU's emulated source returns the EOI's result (1: the asserted line re-forwarded); with the KVM device QEMU " +
      "sets PQ 00, triggers again and returns 0 (spapr_xive_kvm.c kvmppc_xive_esb_rw). PQ and queue entries are the same",
  },
  {
    step: "SetLsiLevel 19 (not initialised)",
    why:
      "a device's line on a source never initialised: QEMU's emulated source takes it and nothing follows (hw/intc/xive.c " +
      "xive_source_set_irq returns nothing; the router drops the event of an invalid EAS); KVM's line path refuses it " +
      "(book3s.c kvm_set_irq → book3s_xive.c kvmppc_xive_set_irq: EINVAL), and so does the native backend",
  },
  {
    step: "H_INT source 16 after RESET",
    why:
      "H_INT_RESET: QEMU's emulated source reset sets every source's PQ to 01; with the KVM device the PQ bits are the " +
      "kernel's, and its RESET sets 01 only on the sources it had unmasked (book3s_xive_native.c kvmppc_xive_reset_sources): " +
      "source 16, masked and then triggered, keeps PQ 10",
  },
];
