/** Why a guest-memory access failed. */
export type GuestMemoryErrorKind = "OUT_OF_BOUNDS" | "MISALIGNED_SIZE" | "CLOSED" | "BAD_SIZE";

/** A guest-memory access that cannot be served; the device model turns it into its own fault. */
export class GuestMemoryError extends Error {
  constructor(
    readonly kind: GuestMemoryErrorKind,
    readonly address: number,
    readonly length: number,
    message: string,
  ) {
    super(message);
    this.name = "GuestMemoryError";
  }
}

/** Throws OUT_OF_BOUNDS unless [address, address + length) lies inside [0, size). */
export function checkRange(address: number, length: number, size: number): void {
  if (
    !Number.isSafeInteger(address) ||
    !Number.isSafeInteger(length) ||
    address < 0 ||
    length < 0 ||
    address + length > size
  ) {
    throw new GuestMemoryError(
      "OUT_OF_BOUNDS",
      address,
      length,
      `guest-physical access [0x${address.toString(16)}, +0x${length.toString(16)}) is outside guest RAM of 0x${size.toString(16)} bytes`,
    );
  }
}
