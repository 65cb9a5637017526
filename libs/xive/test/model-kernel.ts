import type { InKernelXive } from "../src/in-kernel-xive.js";
import type { XiveDevice } from "../src/xive-device.js";

/**
 * The model's KVM XIVE device controls as the in-kernel device of the hypercalls, to test their
 * kvm_irqchip_in_kernel() branches without a kernel. The hypercall layer and the device share
 * one EAS and END table here: the device's controls check and apply first, then the hypercall
 * layer writes what QEMU keeps (the END the device routes a source to where it moved it).
 */
export function modelKernel(device: XiveDevice): InKernelXive {
  return {
    setSourceConfig: (lisn, kvmConfig) => device.setSourceConfig(lisn, kvmConfig),
    setQueueConfig: (server, priority, eq) => device.setQueueConfig(server, priority, eq),
    queueState: (server, priority) => {
      // A queue with no page: the kernel returns without writing its (zeroed) buffer.
      const eq = device.getQueueConfig(server, priority);
      return { qtoggle: eq?.qtoggle ?? 0, qindex: eq?.qindex ?? 0 };
    },
    syncSource: (lisn) => device.syncSource(lisn),
    reset: () => device.reset(),
    esbLoad: (irq, management, offset) => device.esbLoad(irq, management, offset),
    esbStore: (irq, management, offset, value) => device.esbStore(irq, management, offset, value),
  };
}
