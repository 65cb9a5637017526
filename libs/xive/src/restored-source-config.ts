import { encodeKvmSourceConfig } from "./kvm-attributes.js";
import type { XiveDevice } from "./xive-device.js";

/**
 * The SOURCE_CONFIG a restore hands a fresh KVM XIVE device for an unmasked valid source of
 * `device`, as QEMU's post_load hands the device the EAS of its EAT (hw/intc/spapr_xive_kvm.c
 * kvmppc_xive_post_load → kvmppc_xive_set_source_config): the END QEMU's EAT names, i.e. the one
 * the guest asked for where the device routes the source elsewhere (requested-ends.ts), with
 * the source's EISN. The device selects the target again (Linux arch/powerpc/kvm/book3s_xive.c
 * kvmppc_xive_select_target: that END's queue if it has a page and a free slot, else the first
 * vCPU's at the same priority that has both), as `device`'s own restore did
 * (restore-targeting.ts); handing it the routing instead would be a SOURCE_CONFIG QEMU never
 * makes, and would lean on this model selecting exactly as the kernel does.
 */
export function restoredSourceConfig(device: XiveDevice, irq: number): bigint {
  const end = device.requestedEnds.endOf(device.sources, irq);
  const source = device.source(irq)!;
  return encodeKvmSourceConfig({ server: end >>> 3, priority: end & 7, eisn: source.eisn, masked: false });
}
