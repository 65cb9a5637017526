/**
 * Positive Linux errno values the kernel interfaces the models follow return (negated) for bad
 * input: the KVM XIVE device (xive.md §1), iommufd and the seed SMMU calls (smmuv3.md §1-§2).
 * Values from include/uapi/asm-generic/errno-base.h and errno.h. A model error carries the
 * positive value.
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
  ERANGE: 34,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof Errno;
