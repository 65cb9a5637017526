/**
 * Where things are on a pseries machine (xive.md §3 layout, §5, §7). Addresses are guest
 * physical; LISNs are the interrupt numbers a guest and the VMM share.
 */
export const PseriesIrq = {
  /** IPIs: LISN 0 .. 0xFFF; nr_servers of them are claimed (`ibm,xive-lisn-ranges` <0, nr_servers>). */
  IPI_BASE: 0x0,
  NR_IPIS: 0x1000,
  /** Device interrupts start here (SPAPR_XIRQ_BASE); XICS sees the same numbers. */
  XIRQ_BASE: 0x1000,
  NR_XIRQS: 0x1000,
  EPOW: 0x1000,
  HOTPLUG: 0x1001,
  VIO_BASE: 0x1100,
  PCI_LSI_BASE: 0x1200,
  MSI_BASE: 0x1300,
  /** QEMU's pseries LISN space: 0x2000 (IPIs + device interrupts). */
  DEFAULT_NR_IRQS: 0x2000,
} as const;

/** Source ESB pages: vc_base + n << 17, 2 × 64 KiB per source, even = trigger, odd = management. */
export const SPAPR_XIVE_VC_BASE = 0x0006_0100_0000_0000n;
export const ESB_SHIFT = 17;
export const ESB_PAGE_SHIFT = 16;
/** The TIMA on sPAPR (4 × 64 KiB pages: HW, HV, OS, USER). */
export const SPAPR_XIVE_TM_BASE = 0x0006_0302_0318_0000n;

/** Guest-physical address of a source's trigger page (the management page follows it). */
export function esbTriggerPageAddress(lisn: number): bigint {
  return SPAPR_XIVE_VC_BASE + (BigInt(lisn) << BigInt(ESB_SHIFT));
}

export function esbManagementPageAddress(lisn: number): bigint {
  return esbTriggerPageAddress(lisn) + (1n << BigInt(ESB_PAGE_SHIFT));
}

/** END ESB pages follow the sources: end_base = vc_base + nr_irqs << 17, 128 KiB per END. */
export function endEsbAddress(nrIrqs: number, endIndex: number): bigint {
  return SPAPR_XIVE_VC_BASE + (BigInt(nrIrqs) << BigInt(ESB_SHIFT)) + (BigInt(endIndex) << BigInt(ESB_SHIFT));
}
