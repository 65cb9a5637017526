import { guestMemorySpec, openGuestMemory as openBinding, type GuestMemorySpec } from "@vplane/service-kit";
import type { GuestMemory } from "@vplane/guest-memory";
import { DEFAULT_PRIVATE_RAM_BYTES, LIMITS } from "./service-limits.js";

const FIELD = "controller.guest_memory";

/** Checks a controller's GuestMemory binding against this service's limits. */
export function checkGuestMemory(
  path: string,
  sizeBytes: bigint,
  dataDir: string,
  field = FIELD,
): GuestMemorySpec {
  return guestMemorySpec(path, sizeBytes, dataDir, field, {
    ...LIMITS,
    defaultPrivateBytes: DEFAULT_PRIVATE_RAM_BYTES,
  });
}

/**
 * Dirty pages are logged in the host's page size, 64 KiB on POWER (QEMU maps the KVM XIVE pages
 * with page_shift 16, xive.md §1.5): one page per event queue, which keeps the list a migration
 * carries inside its downtime short.
 */
const DIRTY_PAGE_BYTES = 64 * 1024;

/** Opens a controller's RAM: the shared file (created if missing), else sparse memory. */
export function openGuestMemory(spec: GuestMemorySpec): GuestMemory {
  return openBinding(spec, FIELD, { dirtyPageSize: DIRTY_PAGE_BYTES });
}
