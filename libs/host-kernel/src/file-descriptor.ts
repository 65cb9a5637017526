import { KernelError } from "./errno.js";
import { requireLibc } from "./libc.js";

/** open(2) flags (asm-generic/fcntl.h; the same on x86_64, arm64 and powerpc). */
export const OpenFlags = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CLOEXEC: 0o2000000 } as const;

/** Opens a device node (/dev/kvm, /dev/iommu) close-on-exec; KernelError on failure. */
export function openDevice(path: string, flags: number = OpenFlags.O_RDWR): number {
  const libc = requireLibc();
  const fd = libc.open(path, flags | OpenFlags.O_CLOEXEC, 0);
  if (fd < 0) throw new KernelError(`open ${path}`, libc.errno());
  return fd;
}

/** close(2); KernelError on failure (EBADF for an fd already closed). */
export function closeFd(fd: number): void {
  const libc = requireLibc();
  if (libc.close(fd) < 0) throw new KernelError("close", libc.errno());
}
