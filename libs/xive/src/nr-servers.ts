import { Errno } from "@vplane/model-kit";
import { kvmError } from "./xive-error.js";

/** KVM_MAX_VCPUS: NR_SERVERS above it is clamped; server numbers must be below it. */
export const DEFAULT_MAX_VCPUS = 2048;
/** KVM_MAX_VCPU_IDS: NR_SERVERS above it is refused with EINVAL. */
export const DEFAULT_MAX_VCPU_IDS = 8 * DEFAULT_MAX_VCPUS;

/**
 * The NR_SERVERS rules both KVM devices (XIVE and XICS) apply (xive.md §1.2, §10.3): 0 or above
 * KVM_MAX_VCPU_IDS → EINVAL; once the VP block is allocated → EBUSY; above KVM_MAX_VCPUS
 * clamped. Returns the value to keep.
 */
export function checkNrServers(
  value: number,
  maxVcpus: number,
  maxVcpuIds: number,
  allocated: boolean,
): number {
  if (!Number.isInteger(value) || value <= 0 || value > maxVcpuIds) {
    throw kvmError(
      Errno.EINVAL,
      "INVALID_ARGUMENT",
      "NR_SERVERS_OUT_OF_RANGE",
      `nr_servers must be 1..${maxVcpuIds}, got ${value}`,
      "nr_servers",
    );
  }
  if (allocated) {
    throw kvmError(
      Errno.EBUSY,
      "FAILED_PRECONDITION",
      "VP_BLOCK_ALLOCATED",
      "nr_servers cannot change once a vCPU has connected (the VP block is allocated)",
      "nr_servers",
    );
  }
  return Math.min(value, maxVcpus);
}
