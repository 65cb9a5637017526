import { FileGuestMemory } from "@vplane/guest-memory";
import { decodeControllerState } from "@vplane/xive";
import type { ControllerBackend, ControllerSpec } from "./controller-backend.js";
import { EmulatedBackend } from "./emulated-backend.js";
import { NativeBackend, type NativeGuestRam } from "./native-backend.js";

export type ContractBackendKind = "EMULATED" | "NATIVE";

/**
 * Opens either backend the same way for the differential contract suite (kernel-tier/power9):
 * a new controller on the guest RAM file, or one imported from an exported payload. The
 * emulated backend logs dirty pages in 64 KiB pages, as the service opens it. Not the service's
 * openBackend (backend-factory.ts): this runs bundled in the POWER9 guest, which has neither the
 * service's store nor its service kit, and takes a spec, not a durable record.
 */
export function openContractBackend(
  kind: ContractBackendKind,
  ram: NativeGuestRam,
  from: { spec: ControllerSpec } | { exported: Uint8Array },
): ControllerBackend {
  if (kind === "NATIVE") {
    return "spec" in from
      ? NativeBackend.create(from.spec, ram)
      : NativeBackend.importState(decodeControllerState(from.exported), ram);
  }
  const memory = new FileGuestMemory(ram.path, ram.bytes, { dirtyPageSize: 65536 });
  const signals = () => undefined;
  return "spec" in from
    ? new EmulatedBackend(memory, from.spec, signals)
    : new EmulatedBackend(memory, { imported: decodeControllerState(from.exported) }, signals);
}
