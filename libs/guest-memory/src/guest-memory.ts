/**
 * Guest-physical memory as the device models see it: a flat range [0, size) of bytes that a
 * device reads and writes at guest-physical addresses (big-endian accessors, since both the
 * XIVE structures and the SMMUv3 structures this project models are read as the hardware does:
 * XIVE queues are big-endian; SMMU descriptors are little-endian, hence both byte orders).
 *
 * Every write a device makes through this interface is recorded in the dirty-page log, which
 * migration reads to know which guest pages a device touched.
 */
export interface GuestMemory {
  /** Size of guest RAM in bytes. */
  readonly size: number;
  /** Size of a dirty-log page in bytes (a power of two). */
  readonly pageSize: number;

  /** Copies `length` bytes at guest-physical `address` into a new buffer. */
  read(address: number, length: number): Uint8Array;
  /** Copies `bytes` to guest-physical `address` and marks the pages dirty. */
  write(address: number, bytes: Uint8Array): void;

  readU32BE(address: number): number;
  writeU32BE(address: number, value: number): void;
  readU64BE(address: number): bigint;
  writeU64BE(address: number, value: bigint): void;
  readU32LE(address: number): number;
  writeU32LE(address: number, value: number): void;
  readU64LE(address: number): bigint;
  writeU64LE(address: number, value: bigint): void;

  /** Marks the pages covering [address, address + length) dirty without writing them. */
  markDirty(address: number, length: number): void;
  /** Returns the dirty page numbers (page = address / pageSize), ascending, and clears the log. */
  takeDirtyPages(): number[];
  /** Returns the dirty page numbers without clearing the log. */
  peekDirtyPages(): number[];

  /** Releases the backing (file descriptor); later accesses fail. */
  close(): void;
}
