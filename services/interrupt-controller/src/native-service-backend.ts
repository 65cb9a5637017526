import { XiveError } from "@vplane/xive";
import type { BackendOpening } from "./controller-backend.js";
import type { ControllerRecord } from "./controller-config-store.js";
import { checkGuestMemory, openGuestMemory } from "./guest-memory-binding.js";
import { NativeBackend, requireNativeXive } from "./native-backend.js";
import { thisHost, type NativeXiveHost } from "./native-probe.js";

/**
 * The factory's opener for NATIVE controllers (backend-factory.ts): the probe first (so that a
 * host without the KVM XIVE device answers its reason), then the guest RAM file, which a VM this
 * service creates maps as its memory (the kernel writes the event queues into it), then the
 * device, new or from an imported state: on the VM a VMM handed over for this VM id
 * (docs/vmm-handoff.md), which gets the device fd back, else on a VM of the service's own. Separate from native-backend.ts, which also runs in the
 * kernel tier's guest without the service's libraries.
 */
export function openNativeBackend(
  record: ControllerRecord,
  opening: BackendOpening,
  host: NativeXiveHost = thisHost,
): NativeBackend {
  // The request's fields: CreateController's controller.*, ImportDeviceState's own.
  const field = (name: string) => (opening.imported ? name : `controller.${name}`);
  requireNativeXive(host, field("backend"));
  const spec = checkGuestMemory(record.guestMemoryPath, BigInt(record.guestMemoryBytes), opening.dataDir);
  if (spec.path === "") {
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "NATIVE_NEEDS_GUEST_RAM_FILE",
      message: "a NATIVE controller maps the guest RAM file into its VM: name one in guest_memory.path",
      field: field("guest_memory.path"),
    });
  }
  openGuestMemory(spec).close(); // creates and sizes the file as the emulated backend would
  const ram = { path: spec.path, bytes: Number(spec.sizeBytes) };
  const adopted = opening.handedOver?.(record.vm);
  if (adopted?.gone) {
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "VMM_GONE",
      message: `the VMM that handed VM ${record.vm} over has exited`,
    });
  }
  const backend = opening.imported
    ? NativeBackend.importState(opening.imported.state, ram, adopted?.kvm, host)
    : NativeBackend.create(record, ram, adopted?.kvm, host);
  if (adopted) {
    try {
      adopted.sendDevice(backend.deviceFd, `vms/${record.vm}/controller`);
    } catch (error) {
      backend.close();
      throw error;
    }
    adopted.whenGone(() => backend.markVmmGone());
  }
  return backend;
}
