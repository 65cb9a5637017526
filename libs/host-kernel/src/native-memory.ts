import { requireLibc } from "./libc.js";

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A zeroed block of C heap memory for a struct the kernel reads or writes (kvm_device_attr,
 * msghdr, ...), with its address and a host-endian view. JavaScript buffers move under the
 * garbage collector; an address written inside another struct must not.
 */
export class NativeBuffer {
  readonly address: number;
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private handle: unknown;

  constructor(readonly size: number) {
    const { koffi } = requireLibc();
    this.handle = koffi.alloc("uint8_t", Math.max(size, 1));
    this.address = Number(koffi.address(this.handle));
    this.bytes = new Uint8Array(koffi.view(this.handle, Math.max(size, 1)), 0, size);
    this.bytes.fill(0);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
  }

  u16(offset: number): number {
    return this.view.getUint16(offset, LITTLE_ENDIAN);
  }
  u32(offset: number): number {
    return this.view.getUint32(offset, LITTLE_ENDIAN);
  }
  i32(offset: number): number {
    return this.view.getInt32(offset, LITTLE_ENDIAN);
  }
  u64(offset: number): bigint {
    return this.view.getBigUint64(offset, LITTLE_ENDIAN);
  }
  setU16(offset: number, value: number): this {
    this.view.setUint16(offset, value, LITTLE_ENDIAN);
    return this;
  }
  setU32(offset: number, value: number): this {
    this.view.setUint32(offset, value >>> 0, LITTLE_ENDIAN);
    return this;
  }
  setI32(offset: number, value: number): this {
    this.view.setInt32(offset, value, LITTLE_ENDIAN);
    return this;
  }
  setU64(offset: number, value: bigint | number): this {
    this.view.setBigUint64(offset, BigInt.asUintN(64, BigInt(value)), LITTLE_ENDIAN);
    return this;
  }

  free(): void {
    if (this.handle === undefined) return;
    requireLibc().koffi.free(this.handle);
    this.handle = undefined;
  }
}

/** Runs `use` with a fresh NativeBuffer and frees it afterwards. */
export function withNativeBuffer<T>(size: number, use: (buffer: NativeBuffer) => T): T {
  const buffer = new NativeBuffer(size);
  try {
    return use(buffer);
  } finally {
    buffer.free();
  }
}
