import { isAbsolute, resolve } from "node:path";
import { FileGuestMemory, GuestMemoryError, SparseGuestMemory, type GuestMemory } from "@vplane/guest-memory";
import { VplaneError } from "@vplane/service-kit";
import { DEFAULT_PRIVATE_RAM_BYTES, LIMITS } from "./service-limits.js";

/** An SMMU's guest RAM: the VM's shared RAM file (path) or private sparse memory (no path). */
export interface GuestMemorySpec {
  path: string;
  sizeBytes: number;
}

/**
 * The GuestMemory binding of an SMMU (vplane.common.v1.GuestMemory): size a 4 KiB multiple in
 * [1 MiB, 16 TiB]; no path and no size means a private 1 GiB RAM; relative paths resolve in the
 * data folder. `field` names the binding in errors (CreateSmmu's, or ImportDeviceState's).
 */
export function guestMemorySpec(
  path: string,
  sizeBytes: bigint,
  dataDir: string,
  field = "smmu.guest_memory",
): GuestMemorySpec {
  if (path === "" && sizeBytes === 0n) return { path: "", sizeBytes: DEFAULT_PRIVATE_RAM_BYTES };
  const inRange =
    sizeBytes >= BigInt(LIMITS.minGuestMemoryBytes) && sizeBytes <= BigInt(LIMITS.maxGuestMemoryBytes);
  if (sizeBytes % 4096n !== 0n || !inRange) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "GUEST_MEMORY_SIZE_INVALID",
      message: `guest memory size must be a 4 KiB multiple between 1 MiB and 16 TiB, got ${sizeBytes}`,
      field: `${field}.size_bytes`,
    });
  }
  const resolved = path === "" || isAbsolute(path) ? path : resolve(dataDir, path);
  return { path: resolved, sizeBytes: Number(sizeBytes) };
}

/** Opens the shared RAM file (created if missing; another size is refused) or sparse memory. */
export function openGuestMemory(spec: GuestMemorySpec, field = "smmu.guest_memory"): GuestMemory {
  if (spec.path === "") return new SparseGuestMemory(spec.sizeBytes);
  try {
    return new FileGuestMemory(spec.path, spec.sizeBytes);
  } catch (error) {
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: error instanceof GuestMemoryError ? "GUEST_MEMORY_SIZE_MISMATCH" : "GUEST_MEMORY_UNAVAILABLE",
      message: `cannot open guest memory ${spec.path}: ${error instanceof Error ? error.message : String(error)}`,
      field: `${field}.path`,
    });
  }
}
