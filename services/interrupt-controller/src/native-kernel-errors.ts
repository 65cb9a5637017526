import { KernelError, errnoName } from "@vplane/host-kernel";
import { XiveError, type XiveErrorCode } from "@vplane/xive";

/** The gRPC code a kernel errno maps to when the model names no reason for it. */
const CODE_OF_ERRNO: Record<string, XiveErrorCode> = {
  EPERM: "FAILED_PRECONDITION",
  ENOENT: "NOT_FOUND",
  EIO: "INTERNAL",
  ENXIO: "NOT_FOUND",
  E2BIG: "OUT_OF_RANGE",
  EBADF: "FAILED_PRECONDITION",
  ENOMEM: "RESOURCE_EXHAUSTED",
  EFAULT: "INTERNAL",
  EBUSY: "FAILED_PRECONDITION",
  EEXIST: "ALREADY_EXISTS",
  ENODEV: "FAILED_PRECONDITION",
  EINVAL: "INVALID_ARGUMENT",
  ENOSPC: "RESOURCE_EXHAUSTED",
  ENOTTY: "FAILED_PRECONDITION",
};

/**
 * A kernel error as the service reports it: the emulated backend's own error for the same input
 * when the model refuses it with the same errno (same code, reason and field: a VMM sees one
 * error vocabulary whichever backend it drives), else the errno's code with reason
 * KERNEL_<ERRNO>. `modelAnswer` replays the failed call on the native backend's shadow model;
 * `onModelAccepted` hears of a call the kernel refused and the model took (the shadow then holds
 * a change the kernel does not: a difference between model and kernel to fix in the model).
 */
export function kernelFault(
  error: KernelError,
  modelAnswer: () => unknown,
  onModelAccepted: (call: string) => void,
): XiveError {
  try {
    modelAnswer();
    onModelAccepted(`${error.call}: the kernel answered ${error.errnoName}, the model accepted`);
  } catch (model) {
    if (model instanceof XiveError && model.errno === error.errno) return model;
  }
  return new XiveError({
    code: CODE_OF_ERRNO[error.errnoName] ?? "INTERNAL",
    reason: `KERNEL_${errnoName(error.errno)}`.replace(/ /g, "_").toUpperCase(),
    message: error.message,
    errno: error.errno,
  });
}

/** Runs a kernel call; a KernelError becomes kernelFault(error, modelAnswer, onModelAccepted). */
export function kernelCall<T>(
  call: () => T,
  modelAnswer: () => unknown,
  onModelAccepted: (call: string) => void = () => undefined,
): T {
  try {
    return call();
  } catch (error) {
    if (error instanceof KernelError) throw kernelFault(error, modelAnswer, onModelAccepted);
    throw error;
  }
}
