import {
  guestMemorySpec as checkBinding,
  openGuestMemory as openBinding,
  type GuestMemorySpec,
} from "@vplane/service-kit";
import type { GuestMemory } from "@vplane/guest-memory";
import { DEFAULT_PRIVATE_RAM_BYTES, LIMITS } from "./service-limits.js";

export type { GuestMemorySpec };

const FIELD = "smmu.guest_memory";

/** Checks an SMMU's GuestMemory binding against this service's limits. */
export function guestMemorySpec(
  path: string,
  sizeBytes: bigint,
  dataDir: string,
  field = FIELD,
): GuestMemorySpec {
  return checkBinding(path, sizeBytes, dataDir, field, {
    ...LIMITS,
    defaultPrivateBytes: DEFAULT_PRIVATE_RAM_BYTES,
  });
}

/** Opens an SMMU's RAM: the VM's shared file (created if missing), else sparse memory. */
export function openGuestMemory(spec: GuestMemorySpec, field = FIELD): GuestMemory {
  return openBinding(spec, field);
}
