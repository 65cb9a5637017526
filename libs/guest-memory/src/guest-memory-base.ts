import { DirtyPageLog } from "./dirty-page-log.js";
import type { GuestMemory } from "./guest-memory.js";
import { GuestMemoryError, checkRange } from "./guest-memory-error.js";

/** Default dirty-log granule: 4 KiB, the smallest page either architecture maps. */
export const DEFAULT_DIRTY_PAGE_SIZE = 4096;

/**
 * The accessors and the dirty log shared by every backing; a backing supplies only raw copies.
 * Integer accessors go through a small scratch buffer so a backing needs no per-width code.
 */
export abstract class GuestMemoryBase implements GuestMemory {
  readonly pageSize: number;
  protected readonly dirty: DirtyPageLog;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private closed = false;

  protected constructor(
    readonly size: number,
    pageSize: number,
  ) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new GuestMemoryError(
        "BAD_SIZE",
        0,
        size,
        `guest RAM size must be a positive integer, got ${size}`,
      );
    }
    this.pageSize = pageSize;
    this.dirty = new DirtyPageLog(size, pageSize);
  }

  /** Copies [address, address + target.length) into target; the range is already checked. */
  protected abstract readRaw(address: number, target: Uint8Array): void;
  /** Copies source to [address, address + source.length); the range is already checked. */
  protected abstract writeRaw(address: number, source: Uint8Array): void;
  protected abstract release(): void;

  read(address: number, length: number): Uint8Array {
    this.check(address, length);
    const out = new Uint8Array(length);
    this.readRaw(address, out);
    return out;
  }

  write(address: number, bytes: Uint8Array): void {
    this.check(address, bytes.length);
    this.writeRaw(address, bytes);
    this.dirty.mark(address, bytes.length);
  }

  readU32BE(address: number): number {
    return this.readScratch(address, 4).getUint32(0, false);
  }
  readU32LE(address: number): number {
    return this.readScratch(address, 4).getUint32(0, true);
  }
  readU64BE(address: number): bigint {
    return this.readScratch(address, 8).getBigUint64(0, false);
  }
  readU64LE(address: number): bigint {
    return this.readScratch(address, 8).getBigUint64(0, true);
  }
  writeU32BE(address: number, value: number): void {
    this.scratchView.setUint32(0, value >>> 0, false);
    this.writeScratch(address, 4);
  }
  writeU32LE(address: number, value: number): void {
    this.scratchView.setUint32(0, value >>> 0, true);
    this.writeScratch(address, 4);
  }
  writeU64BE(address: number, value: bigint): void {
    this.scratchView.setBigUint64(0, BigInt.asUintN(64, value), false);
    this.writeScratch(address, 8);
  }
  writeU64LE(address: number, value: bigint): void {
    this.scratchView.setBigUint64(0, BigInt.asUintN(64, value), true);
    this.writeScratch(address, 8);
  }

  markDirty(address: number, length: number): void {
    this.check(address, length);
    this.dirty.mark(address, length);
  }

  takeDirtyPages(): number[] {
    const pages = this.dirty.pages();
    this.dirty.clear();
    return pages;
  }

  peekDirtyPages(): number[] {
    return this.dirty.pages();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }

  protected check(address: number, length: number): void {
    if (this.closed) throw new GuestMemoryError("CLOSED", address, length, "guest memory is closed");
    checkRange(address, length, this.size);
  }

  private readScratch(address: number, width: 4 | 8): DataView {
    this.check(address, width);
    this.readRaw(address, width === 8 ? this.scratch : this.scratch.subarray(0, 4));
    return this.scratchView;
  }

  private writeScratch(address: number, width: 4 | 8): void {
    this.check(address, width);
    this.writeRaw(address, width === 8 ? this.scratch : this.scratch.subarray(0, 4));
    this.dirty.mark(address, width);
  }
}
