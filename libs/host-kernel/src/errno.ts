/**
 * Linux errno values by name (asm-generic/errno-base.h and errno.h; the same numbers on x86_64,
 * arm64 and powerpc for every name listed here, which test/uapi-constants.test.ts checks).
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTSOCK: 88,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
} as const;

export type ErrnoName = keyof typeof Errno;

const NAMES = new Map<number, ErrnoName>(
  (Object.entries(Errno) as [ErrnoName, number][]).map(([name, value]) => [value, name]),
);

/** "EINVAL" for 22; "errno 200" for a number not listed. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * A system call that failed: which call (an ioctl's uapi name, "mmap", "sendmsg"), the positive
 * errno it set and that errno's name. Services map it to a gRPC status by errno.
 */
export class KernelError extends Error {
  readonly errno: number;
  readonly errnoName: string;
  readonly call: string;

  constructor(call: string, errno: number, detail?: string) {
    super(`${call} failed: ${errnoName(errno)} (${errno})${detail ? `: ${detail}` : ""}`);
    this.name = "KernelError";
    this.call = call;
    this.errno = errno;
    this.errnoName = errnoName(errno);
  }
}

export function isKernelError(error: unknown, errno?: number): error is KernelError {
  return error instanceof KernelError && (errno === undefined || error.errno === errno);
}
