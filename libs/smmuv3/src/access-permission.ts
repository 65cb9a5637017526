/**
 * Access permissions as bits, shared by transactions, descriptors and cached entries: READ 1,
 * WRITE 2, the same values as iommufd's pgfault perm and the seed's v8 fault perm (digest §1.4,
 * §2.6).
 */
export const Perm = { NONE: 0, READ: 1, WRITE: 2, READ_WRITE: 3 } as const;
export type Perm = number;

/** The permission bits a read (false) or write (true) transaction needs. */
export function requiredPerm(write: boolean): Perm {
  return write ? Perm.WRITE : Perm.READ;
}
