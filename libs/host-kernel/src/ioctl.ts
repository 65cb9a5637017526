import { KernelError } from "./errno.js";
import type { IoctlRequest } from "./ioctl-encoding.js";
import { requireLibc, type Libc } from "./libc.js";
import type { NativeBuffer } from "./native-memory.js";

/**
 * ioctl(2): the argument is an integer (KVM_CHECK_EXTENSION's capability) or a struct in native
 * memory, passed by address. Returns the call's non-negative result; a failure throws
 * KernelError with the request's uapi name and the errno.
 */
let bound: Libc | undefined;

export function ioctl(fd: number, request: IoctlRequest, arg: number | bigint | NativeBuffer = 0): number {
  // Bound once: this is the hot path (bench/src/host-kernel-ioctl-bench.ts).
  const libc = (bound ??= requireLibc());
  const result = libc.ioctl(fd, request.number, typeof arg === "object" ? arg.address : arg);
  if (result < 0) throw new KernelError(request.name, libc.errno());
  return result;
}
