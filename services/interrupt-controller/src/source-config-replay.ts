import { errnoName } from "@vplane/host-kernel";
import { Errno, decodeKvmSourceConfig } from "@vplane/xive";
import type { ControllerBackend } from "./controller-backend.js";

/**
 * A stored SOURCE_CONFIG replayed when the service starts, as QEMU's post_load gives one to a
 * fresh KVM device (hw/intc/spapr_xive_kvm.c kvmppc_xive_post_load). The device selects the
 * target again (Linux arch/powerpc/kvm/book3s_xive.c kvmppc_xive_select_target), and a source
 * routed to a queue that lost its page since (a queue reset touches no source) can find none:
 * -EBUSY. The END the record names is QEMU's: one the device routes elsewhere is kept apart, as
 * an import keeps it (restoreSourceConfig). The failure names the source, where its record routes it and the errno, because it
 * ends up in the controller's CONTROLLER_NOT_RESTORED answer, where the live call's message
 * ("no connected vCPU has a priority N queue: configure one ...") names neither the source nor
 * anything the operator can still do on a controller that was not rebuilt.
 */
export function replaySourceConfig(backend: ControllerBackend, irq: number, kvmConfig: bigint): void {
  try {
    backend.restoreSourceConfig(irq, kvmConfig);
  } catch (error) {
    const { server, priority } = decodeKvmSourceConfig(kvmConfig);
    const errno = (error as { errno?: unknown }).errno;
    const answered = typeof errno === "number" ? `${errnoName(errno)} (${errno})` : "an error";
    const why =
      errno === Errno.EBUSY
        ? `no connected vCPU's priority ${priority} queue has a page and a free source slot (a queue ` +
          `reset leaves the sources routed to it; the restart routes them again as KVM's restore does)`
        : error instanceof Error
          ? error.message
          : String(error);
    throw new Error(
      `source ${irq} (0x${irq.toString(16)}), stored as routed to server ${server} priority ${priority}, ` +
        `could not be routed again: SOURCE_CONFIG answered ${answered}: ${why}`,
      { cause: error },
    );
  }
}
