import type { KernelArchitecture } from "./architecture.js";

/** An ioctl request number with the name it has in the uapi headers (for errors and traces). */
export interface IoctlRequest {
  readonly name: string;
  readonly number: number;
}

export type IoctlDirection = "none" | "write" | "read" | "readWrite";

/**
 * The layout of `_IOC(dir, type, nr, size)`: asm-generic/ioctl.h for x86_64 and arm64 (2
 * direction bits, 14 size bits, _IOC_NONE = 0), arch/powerpc/include/uapi/asm/ioctl.h for
 * powerpc (3 direction bits, 13 size bits, _IOC_NONE = 1, _IOC_WRITE = 4): on ppc64
 * KVM_GET_API_VERSION is 0x2000AE00, on x86_64 0xAE00.
 */
interface IocLayout {
  sizeBits: number;
  none: number;
  read: number;
  write: number;
}

const GENERIC: IocLayout = { sizeBits: 14, none: 0, read: 2, write: 1 };
const POWERPC: IocLayout = { sizeBits: 13, none: 1, read: 2, write: 4 };

const LAYOUTS: Record<KernelArchitecture, IocLayout> = {
  x86_64: GENERIC,
  arm64: GENERIC,
  ppc64le: POWERPC,
};

const NR_SHIFT = 0;
const TYPE_SHIFT = 8;
const SIZE_SHIFT = 16;

/** `_IOC(dir, type, nr, size)` for an architecture, as an unsigned 32-bit number. */
export function ioctlNumber(
  arch: KernelArchitecture,
  direction: IoctlDirection,
  type: number,
  nr: number,
  size: number,
): number {
  const layout = LAYOUTS[arch];
  if (size < 0 || size >= 1 << layout.sizeBits) {
    throw new RangeError(`ioctl argument size ${size} does not fit ${layout.sizeBits} bits on ${arch}`);
  }
  const dir =
    direction === "none"
      ? layout.none
      : direction === "read"
        ? layout.read
        : direction === "write"
          ? layout.write
          : layout.read | layout.write;
  const dirShift = SIZE_SHIFT + layout.sizeBits;
  // Multiplication, not <<, so that direction bit 31 does not turn the number negative.
  return (
    dir * 2 ** dirShift + ((size << SIZE_SHIFT) | ((type & 0xff) << TYPE_SHIFT) | ((nr & 0xff) << NR_SHIFT))
  );
}

/** A named request for an architecture: `ioctlRequest("ppc64le", "KVM_CREATE_VM", "none", 0xae, 1, 0)`. */
export function ioctlRequest(
  arch: KernelArchitecture,
  name: string,
  direction: IoctlDirection,
  type: number,
  nr: number,
  size = 0,
): IoctlRequest {
  return { name, number: ioctlNumber(arch, direction, type, nr, size) };
}
