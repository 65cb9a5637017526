import type { KernelError } from "@vplane/host-kernel";
import { Errno } from "@vplane/host-kernel";
import {
  CommandOpcode,
  HWPT_FAULT_ID_VALID,
  SmmuError,
  cfgiSid,
  opcodeOf,
  validateGuestCommand,
  validateGuestSte,
  type RawCommand,
  type SmmuErrorCode,
  type SmmuFeatures,
} from "@vplane/smmuv3";

/** The gRPC code a kernel errno maps to (AIP-193; the emulated backend uses the same pairs). */
function codeOf(errno: number): SmmuErrorCode {
  switch (errno) {
    case Errno.ENOENT:
      return "NOT_FOUND";
    case Errno.EEXIST:
      return "ALREADY_EXISTS";
    case Errno.EBUSY:
      return "FAILED_PRECONDITION";
    case Errno.ENOSPC:
    case Errno.ENOMEM:
      return "RESOURCE_EXHAUSTED";
    case Errno.EOPNOTSUPP:
      return "UNIMPLEMENTED";
    default:
      return "INVALID_ARGUMENT";
  }
}

/** A kernel refusal as the service's error: the errno as the kernel gave it, a reason naming the call. */
export function kernelRefusal(error: KernelError, reason: string, field?: string): SmmuError {
  return new SmmuError({
    code: codeOf(error.errno),
    reason,
    message: `the kernel refused ${error.call}: ${error.errnoName} (${error.errno})`,
    errno: error.errno,
    field,
  });
}

/**
 * The kernel refused a guest STE (IOMMU_HWPT_ALLOC with ARM_SMMUV3 data): the errno is the
 * kernel's; the reason is the one the emulated backend gives the same words (its validator
 * follows arm_smmu_validate_vste), so a VMM sees one name for one fault on either backend. Words
 * the model accepts but the kernel refused keep the kernel's errno under KERNEL_REFUSED_STE.
 */
export function steRefusal(error: KernelError, ste: readonly [bigint, bigint], flags: number): SmmuError {
  // HWPT_ALLOC flags a nested HWPT cannot take (anything but FAULT_ID_VALID): EOPNOTSUPP.
  if (error.errno === Errno.EOPNOTSUPP && (flags & ~HWPT_FAULT_ID_VALID) !== 0) {
    return new SmmuError({
      code: "INVALID_ARGUMENT",
      reason: "UNSUPPORTED_FLAGS",
      message: `HWPT flags 0x${flags.toString(16)} are not supported: ${error.errnoName} (${error.errno})`,
      errno: error.errno,
      field: "flags",
    });
  }
  if (error.errno === Errno.EIO) {
    try {
      validateGuestSte(ste[0], ste[1]);
    } catch (named) {
      if (named instanceof SmmuError && named.errno === Errno.EIO) return named;
    }
  }
  return kernelRefusal(error, "KERNEL_REFUSED_STE", "ste");
}

/**
 * The kernel refused entry `index` of an IOMMU_HWPT_INVALIDATE batch (EIO from
 * arm_vsmmu_validate_user_cmd or arm_vsmmu_convert_user_cmd): named as the emulated backend
 * names it (validateGuestCommand's reason, else UNKNOWN_VIRTUAL_SID when no vdevice has the
 * command's vSID); another refusal keeps the kernel's errno under KERNEL_REFUSED_COMMAND.
 */
export function commandRefusal(
  error: KernelError,
  command: RawCommand,
  index: number,
  context: { features: SmmuFeatures; knownVsid: (vsid: number) => boolean },
): SmmuError {
  if (error.errno === Errno.EIO) {
    try {
      validateGuestCommand(command, context.features);
    } catch (named) {
      if (named instanceof SmmuError && named.errno === Errno.EIO) return named.atBatchIndex(index);
    }
    const opcode = opcodeOf(command);
    const carriesVsid =
      opcode === CommandOpcode.ATC_INV ||
      opcode === CommandOpcode.CFGI_CD ||
      opcode === CommandOpcode.CFGI_CD_ALL;
    if (carriesVsid && !context.knownVsid(cfgiSid(command))) {
      return new SmmuError({
        code: "INVALID_ARGUMENT",
        reason: "UNKNOWN_VIRTUAL_SID",
        message: `no vdevice has virtual StreamID ${cfgiSid(command)}`,
        errno: Errno.EIO,
        field: "sid",
      }).atBatchIndex(index);
    }
  }
  return kernelRefusal(error, "KERNEL_REFUSED_COMMAND", "cmd").atBatchIndex(index);
}
