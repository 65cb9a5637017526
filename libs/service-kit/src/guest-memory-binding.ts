import { isAbsolute, resolve } from "node:path";
import { FileGuestMemory, GuestMemoryError, SparseGuestMemory, type GuestMemory } from "@vplane/guest-memory";
import { VplaneError } from "./vplane-error.js";

/** A device's guest RAM as requested: the VM's shared RAM file (path) or private memory (no path). */
export interface GuestMemorySpec {
  path: string;
  sizeBytes: number;
}

/** The sizes a service accepts for a vplane.common.v1.GuestMemory binding. */
export interface GuestMemoryLimits {
  minGuestMemoryBytes: number;
  maxGuestMemoryBytes: number;
  /** The private RAM a binding with neither path nor size gets. */
  defaultPrivateBytes: number;
}

/**
 * Checks a GuestMemory binding: size a 4 KiB multiple within the limits; no path and no size means
 * private RAM of the default size; relative paths resolve in the data folder. `field` names the
 * binding in errors (the create call's or ImportDeviceState's).
 */
export function guestMemorySpec(
  path: string,
  sizeBytes: bigint,
  dataDir: string,
  field: string,
  limits: GuestMemoryLimits,
): GuestMemorySpec {
  if (path === "" && sizeBytes === 0n) return { path: "", sizeBytes: limits.defaultPrivateBytes };
  const inRange =
    sizeBytes >= BigInt(limits.minGuestMemoryBytes) && sizeBytes <= BigInt(limits.maxGuestMemoryBytes);
  if (sizeBytes % 4096n !== 0n || !inRange) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "GUEST_MEMORY_SIZE_INVALID",
      message: `guest memory size must be a 4 KiB multiple between ${limits.minGuestMemoryBytes} and ${limits.maxGuestMemoryBytes} bytes, got ${sizeBytes}`,
      field: `${field}.size_bytes`,
    });
  }
  const resolved = path === "" || isAbsolute(path) ? path : resolve(dataDir, path);
  return { path: resolved, sizeBytes: Number(sizeBytes) };
}

/**
 * The guest RAM an imported device binds on this host: ImportDeviceState's `guest_memory`, its
 * size the exported one when unset, checked by the service (`check`: its limits, the data
 * folder). Another size than the exported state's is GUEST_MEMORY_SIZE_MISMATCH: a device's
 * queues and tables were laid out in that RAM. `state` names the state in the message.
 */
export function importedGuestMemory(
  requested: { path: string; sizeBytes: bigint } | undefined,
  exportedBytes: number,
  check: (path: string, sizeBytes: bigint) => GuestMemorySpec,
  state = "the state",
): GuestMemorySpec {
  const sizeBytes = requested?.sizeBytes || BigInt(exportedBytes);
  const memory = check(requested?.path ?? "", sizeBytes);
  if (memory.sizeBytes !== exportedBytes) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "GUEST_MEMORY_SIZE_MISMATCH",
      message: `${state} was exported with ${exportedBytes} bytes of guest RAM, not ${memory.sizeBytes}`,
      field: "guest_memory.size_bytes",
    });
  }
  return memory;
}

/** Opens the shared RAM file (created if missing; another size is refused) or sparse memory. */
export function openGuestMemory(
  spec: GuestMemorySpec,
  field: string,
  options: { dirtyPageSize?: number } = {},
): GuestMemory {
  if (spec.path === "") return new SparseGuestMemory(spec.sizeBytes, options);
  try {
    return new FileGuestMemory(spec.path, spec.sizeBytes, options);
  } catch (error) {
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: error instanceof GuestMemoryError ? "GUEST_MEMORY_SIZE_MISMATCH" : "GUEST_MEMORY_UNAVAILABLE",
      message: `cannot open guest memory ${spec.path}: ${error instanceof Error ? error.message : String(error)}`,
      field: `${field}.path`,
    });
  }
}
