/**
 * Positive Linux errno values the KVM XIVE device returns (negated) for bad input
 * (xive.md §1.1, §1.2). A model error carries the positive value, as VplaneError does.
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
} as const;

export type ErrnoName = keyof typeof Errno;
