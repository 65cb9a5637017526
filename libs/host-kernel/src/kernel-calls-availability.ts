import { hostArchitecture, type KernelArchitecture } from "./architecture.js";
import { loadLibc } from "./libc.js";

export type KernelCallsAvailability =
  { available: true; arch: KernelArchitecture } | { available: false; reason: string };

/**
 * Whether this process can make kernel calls through this library: a Linux ABI it encodes and
 * koffi's binary for it. Never throws; the reason names what is missing.
 */
export function kernelCallsAvailability(): KernelCallsAvailability {
  const arch = hostArchitecture();
  if (arch === undefined) {
    return {
      available: false,
      reason: `${process.platform}-${process.arch} is not a kernel ABI this library encodes (linux x86_64, arm64, ppc64le)`,
    };
  }
  const libc = loadLibc();
  return libc.available ? { available: true, arch } : { available: false, reason: libc.reason };
}
