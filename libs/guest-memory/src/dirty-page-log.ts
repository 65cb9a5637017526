/** A bitmap of the guest pages devices wrote, one bit per page (like KVM's dirty log). */
export class DirtyPageLog {
  private readonly bits: Uint32Array;
  private readonly pageShift: number;

  constructor(
    size: number,
    readonly pageSize: number,
  ) {
    if (!Number.isInteger(Math.log2(pageSize)))
      throw new RangeError(`page size ${pageSize} is not a power of two`);
    this.pageShift = Math.log2(pageSize);
    this.bits = new Uint32Array(Math.ceil(Math.ceil(size / pageSize) / 32));
  }

  /** Marks the pages covering [address, address + length); length 0 marks nothing. */
  mark(address: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(address / this.pageSize);
    const last = Math.floor((address + length - 1) / this.pageSize);
    for (let page = first; page <= last; page++) this.bits[page >>> 5]! |= 1 << (page & 31);
  }

  /** The marked page numbers, ascending. */
  pages(): number[] {
    const out: number[] = [];
    for (let word = 0; word < this.bits.length; word++) {
      let w = this.bits[word]!;
      while (w !== 0) {
        const bit = 31 - Math.clz32(w & -w);
        out.push(word * 32 + bit);
        w &= w - 1;
      }
    }
    return out;
  }

  clear(): void {
    this.bits.fill(0);
  }

  get shift(): number {
    return this.pageShift;
  }
}
