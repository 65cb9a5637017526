import { isAbsolute, resolve } from "node:path";
import { FileGuestMemory, GuestMemoryError, SparseGuestMemory, type GuestMemory } from "@vplane/guest-memory";
import { VplaneError } from "@vplane/service-kit";
import { DEFAULT_PRIVATE_RAM_BYTES, LIMITS } from "./service-limits.js";

/** A controller's guest RAM as requested: a shared file (path) or private memory (no path). */
export interface GuestMemorySpec {
  path: string;
  sizeBytes: number;
}

/**
 * Checks the binding: size a 4 KiB multiple in [1 MiB, 16 TiB] (0 without a path means a private
 * 1 GiB RAM). Relative paths resolve in the data folder.
 */
export function checkGuestMemory(
  path: string,
  sizeBytes: bigint,
  dataDir: string,
  field = "controller.guest_memory",
): GuestMemorySpec {
  if (path === "" && sizeBytes === 0n) return { path: "", sizeBytes: DEFAULT_PRIVATE_RAM_BYTES };
  if (
    sizeBytes % 4096n !== 0n ||
    sizeBytes < BigInt(LIMITS.minGuestMemoryBytes) ||
    sizeBytes > BigInt(LIMITS.maxGuestMemoryBytes)
  ) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "GUEST_MEMORY_SIZE_INVALID",
      message: `guest memory size must be a 4 KiB multiple between 1 MiB and 16 TiB, got ${sizeBytes}`,
      field: `${field}.size_bytes`,
    });
  }
  return {
    path: path === "" ? "" : isAbsolute(path) ? path : resolve(dataDir, path),
    sizeBytes: Number(sizeBytes),
  };
}

/**
 * Dirty pages are logged in the host's page size, 64 KiB on POWER (QEMU maps the KVM XIVE pages
 * with page_shift 16, xive.md §1.5): one page per event queue, which keeps the list a migration
 * carries inside its downtime short.
 */
const DIRTY_PAGE_BYTES = 64 * 1024;

/** Opens the RAM: FileGuestMemory on the shared file (created if missing), else sparse memory. */
export function openGuestMemory(spec: GuestMemorySpec): GuestMemory {
  const options = { dirtyPageSize: DIRTY_PAGE_BYTES };
  if (spec.path === "") return new SparseGuestMemory(spec.sizeBytes, options);
  try {
    return new FileGuestMemory(spec.path, spec.sizeBytes, options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: error instanceof GuestMemoryError ? "GUEST_MEMORY_SIZE_MISMATCH" : "GUEST_MEMORY_UNAVAILABLE",
      message: `cannot open guest memory ${spec.path}: ${message}`,
      field: "controller.guest_memory.path",
    });
  }
}
