import type { GuestMemory } from "@vplane/guest-memory";

/**
 * Test support: builds AArch64 stage-1 tables in guest memory the way a guest OS would, with its
 * own arithmetic (the level shifts listed in digest §4.2, written out) so the model's walker is
 * checked against an independent layout, not against itself.
 */
const SHIFTS: Record<number, readonly number[]> = {
  12: [39, 30, 21, 12],
  14: [47, 36, 25, 14],
  16: [Number.NaN, 42, 29, 16],
};

export interface LeafOptions {
  /** AP[2] = 1: read-only. */
  readOnly?: boolean;
  /** AF = 0. */
  noAccessFlag?: boolean;
  /** Leaf level (default 3 = page). */
  level?: number;
}

export class GuestPageTables {
  readonly root: number;
  private next: number;
  readonly tableBytes: number;

  constructor(
    private readonly memory: GuestMemory,
    readonly granuleBits: 12 | 14 | 16,
    readonly inputBits: number,
    /** IPA where table pages are allocated from (granule aligned). */
    allocateFrom: number,
    /** Where an IPA lands in the backing (identity unless stage 2 moves it). */
    private readonly toHost: (ipa: number) => number = (ipa) => ipa,
  ) {
    this.tableBytes = 2 ** granuleBits;
    this.next = allocateFrom;
    this.root = this.allocate();
  }

  get startLevel(): number {
    const shifts = SHIFTS[this.granuleBits]!;
    for (let level = 0; level <= 3; level++)
      if (!Number.isNaN(shifts[level]!) && shifts[level]! < this.inputBits) return level;
    throw new Error("no level");
  }

  /** IPA of the descriptor for `va` at `level`, following (and creating) tables from the root. */
  descriptorIpa(va: number, level: number, create = true): number {
    let table = this.root;
    for (let l = this.startLevel; ; l++) {
      const at = table + this.index(va, l) * 8;
      if (l === level) return at;
      const lo = this.memory.readU32LE(this.toHost(at));
      const hi = this.memory.readU32LE(this.toHost(at) + 4);
      if ((lo & 3) !== 3) {
        if (!create) throw new Error(`no table at level ${l}`);
        const t = this.allocate();
        this.writeDescriptor(at, BigInt(t) | 3n);
        table = t;
      } else {
        table = (hi & 0xffff) * 2 ** 32 + (lo >>> 0) - ((lo >>> 0) % this.tableBytes);
      }
    }
  }

  /** Maps `va` to output address `out` with a page (level 3) or block (level 1/2) descriptor. */
  map(va: number, out: number, options: LeafOptions = {}): number {
    const level = options.level ?? 3;
    const at = this.descriptorIpa(va, level);
    let d = BigInt(out) | (level === 3 ? 3n : 1n);
    if (!options.noAccessFlag) d |= 1n << 10n;
    if (options.readOnly) d |= 1n << 7n;
    this.writeDescriptor(at, d);
    return at;
  }

  /** Sets APTable[1] (write forbidden below) on the table descriptor at `level` for `va`. */
  setTableReadOnly(va: number, level: number): void {
    const at = this.descriptorIpa(va, level, false);
    const h = this.toHost(at);
    this.memory.writeU64LE(h, this.memory.readU64LE(h) | (1n << 62n));
  }

  writeDescriptor(ipa: number, value: bigint): void {
    this.memory.writeU64LE(this.toHost(ipa), value);
  }

  /** Shift of `level` for this granule. */
  shift(level: number): number {
    return SHIFTS[this.granuleBits]![level]!;
  }

  private index(va: number, level: number): number {
    const shift = this.shift(level);
    const width = level === this.startLevel ? this.inputBits - shift : this.granuleBits - 3;
    return Math.floor(va / 2 ** shift) % 2 ** width;
  }

  private allocate(): number {
    const t = this.next;
    this.next += this.tableBytes;
    return t;
  }
}
