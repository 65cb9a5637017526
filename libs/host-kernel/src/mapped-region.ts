import { KernelError } from "./errno.js";
import { requireLibc } from "./libc.js";

/** mmap(2) protection and flags (asm-generic/mman-common.h, mman.h; the same on all three ABIs). */
export const Mmap = { PROT_READ: 1, PROT_WRITE: 2, MAP_SHARED: 1 } as const;

const MAP_FAILED = 2n ** 64n - 1n;

/** The host's page size, the unit of mmap offsets into a device fd. */
export function hostPageSize(): number {
  return requireLibc().getpagesize();
}
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export type AccessSize = 1 | 2 | 4 | 8;
/** "big" for device registers (XIVE ESB and TIMA pages are big-endian), "host" for memory. */
export type ByteOrder = "big" | "host";

/** Accesses go through views of this many bytes, made when first touched. */
const WINDOW = 1 << 16;

/**
 * A shared mapping of an fd (a device's MMIO pages, a memory file). Each load and store is one
 * access of exactly the given size, made through a typed array element of that width, so a
 * device sees an 8-byte load as one 8-byte load (an ESB special load must not be split). The
 * mapping may be far larger than an ArrayBuffer can be (the KVM XIVE device's ESB pages take
 * 128 KiB per source): views of 64 KiB windows are made as they are touched, and only touching
 * memory faults a page in.
 */
export class MappedRegion {
  private windows: Map<number, ArrayBuffer> | undefined = new Map();

  private constructor(
    readonly address: number,
    readonly length: number,
  ) {}

  /** mmap(NULL, length, prot, MAP_SHARED, fd, offset); KernelError("mmap", errno) on failure. */
  static map(
    fd: number,
    offset: number,
    length: number,
    prot = Mmap.PROT_READ | Mmap.PROT_WRITE,
  ): MappedRegion {
    const libc = requireLibc();
    const address = BigInt(libc.mmap(0, length, prot, Mmap.MAP_SHARED, fd, offset));
    if (address === MAP_FAILED) throw new KernelError("mmap", libc.errno());
    return new MappedRegion(Number(address), length);
  }

  get mapped(): boolean {
    return this.windows !== undefined;
  }

  load(offset: number, size: AccessSize, order: ByteOrder = "host"): bigint {
    const buffer = this.window(offset, size);
    const index = (offset % WINDOW) / size;
    switch (size) {
      case 1:
        return BigInt(new Uint8Array(buffer)[index]!);
      case 2:
        return fromOrder(BigInt(new Uint16Array(buffer)[index]!), 2, order);
      case 4:
        return fromOrder(BigInt(new Uint32Array(buffer)[index]!), 4, order);
      case 8:
        return fromOrder(new BigUint64Array(buffer)[index]!, 8, order);
    }
  }

  store(offset: number, size: AccessSize, value: bigint, order: ByteOrder = "host"): void {
    const buffer = this.window(offset, size);
    const index = (offset % WINDOW) / size;
    const raw = fromOrder(BigInt.asUintN(size * 8, value), size, order);
    switch (size) {
      case 1:
        new Uint8Array(buffer)[index] = Number(raw);
        return;
      case 2:
        new Uint16Array(buffer)[index] = Number(raw);
        return;
      case 4:
        new Uint32Array(buffer)[index] = Number(raw);
        return;
      case 8:
        new BigUint64Array(buffer)[index] = raw;
        return;
    }
  }

  /** munmap(2); idempotent. Later accesses throw instead of touching unmapped memory. */
  unmap(): void {
    if (this.windows === undefined) return;
    this.windows = undefined;
    const libc = requireLibc();
    if (libc.munmap(this.address, this.length) < 0) throw new KernelError("munmap", libc.errno());
  }

  /** The view of the window holding [offset, offset+size), checked for bounds and alignment. */
  private window(offset: number, size: AccessSize): ArrayBuffer {
    if (this.windows === undefined) throw new Error("the region has been unmapped");
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.length || offset % size !== 0) {
      throw new RangeError(
        `access of ${size} bytes at ${offset} is outside or misaligned in ${this.length} bytes`,
      );
    }
    const start = offset - (offset % WINDOW);
    let view = this.windows.get(start);
    if (view === undefined) {
      view = requireLibc().koffi.view(this.address + start, Math.min(WINDOW, this.length - start));
      this.windows.set(start, view);
    }
    return view;
  }
}

/** A value as read with a host-order load, in the requested order (the swap is its own inverse). */
function fromOrder(value: bigint, size: number, order: ByteOrder): bigint {
  if (order === "host" || !LITTLE_ENDIAN || size === 1) return value;
  let swapped = 0n;
  for (let i = 0; i < size; i++) swapped = (swapped << 8n) | ((value >> BigInt(8 * i)) & 0xffn);
  return swapped;
}
