import type { KvmXiveEq } from "./kvm-attributes.js";

/**
 * The KVM XIVE device as QEMU's sPAPR hypercalls reach it when the interrupt controller is in
 * the kernel (the kvm_irqchip_in_kernel() branches of QEMU hw/intc/spapr_xive.c, carried out by
 * hw/intc/spapr_xive_kvm.c): its attributes and its mapped ESB pages. A call the device refuses
 * throws; the hypercall then answers H_HARDWARE, as QEMU does.
 * The native backend implements it over the host kernel's device; its H_INT_* calls then go
 * through the same checks, in the same order, with the same codes as the emulated backend's.
 */
export interface InKernelXive {
  /**
   * KVM_DEV_XIVE_GRP_SOURCE_CONFIG of `lisn` (kvmppc_xive_set_source_config); returns the server
   * the device routes it to, which may be another vCPU than the one asked for
   * (kvmppc_xive_select_target).
   */
  setSourceConfig(lisn: number, kvmConfig: bigint): number;
  /** KVM_DEV_XIVE_GRP_EQ_CONFIG set (kvmppc_xive_set_queue_config). */
  setQueueConfig(server: number, priority: number, eq: KvmXiveEq): void;
  /** KVM_DEV_XIVE_GRP_EQ_CONFIG get: the live generation and index (kvmppc_xive_get_queue_config). */
  queueState(server: number, priority: number): { qtoggle: number; qindex: number };
  /** KVM_DEV_XIVE_GRP_SOURCE_SYNC (kvmppc_xive_sync_source). */
  syncSource(lisn: number): void;
  /** KVM_DEV_XIVE_GRP_CTRL / KVM_DEV_XIVE_RESET (kvmppc_xive_reset). */
  reset(): void;
  /** An 8-byte load from a source's mapped ESB page, management or trigger (xive_esb_rw). */
  esbLoad(irq: number, management: boolean, offset: number): bigint;
  /** An 8-byte store to a source's mapped ESB page. */
  esbStore(irq: number, management: boolean, offset: number, value: bigint): void;
}
