import { POW2 } from "./bits.js";
import { Perm } from "./access-permission.js";
import { levelShift, startLevelFor, strideOf, type GranuleBits } from "./translation-granule.js";

/**
 * The host-owned stage-2 translation table of a domain, as real AArch64 VMSAv8-64 stage-2
 * descriptors (table / block / page, S2AP[7:6], AF[10], output address [47:g]) kept in
 * host-private table pages that the guest can never see or write.
 *
 * Why real tables rather than a range map: the IOTLB, the range invalidations (TLBI_S2_IPA,
 * TTL hints) and the nested combination ("keep the smaller page", digest §4.2) are defined in
 * terms of the levels and block sizes a walk finds; a range map would have to invent them. Here
 * map() picks the largest block each piece allows, exactly as Linux's io-pgtable-arm does, so a
 * walk returns the level and size hardware would cache. The walk cost is also the real one
 * (the bench's "nested miss, 4 x 4 levels").
 *
 * Descriptors are stored as pairs of unsigned 32-bit halves in one Uint32Array per table, so
 * the walk allocates nothing.
 */
export class Stage2PageTable {
  readonly granuleBits: GranuleBits;
  readonly ipaBits: number;
  readonly startLevel: number;
  /** Table pages by index; the "host physical address" of table i is i << granuleBits. */
  private readonly tables: (Uint32Array | undefined)[] = [];
  /** Valid entries per table, to free a table when its last entry goes. */
  private readonly liveEntries: number[] = [];
  private readonly freeTables: number[] = [];
  private readonly entriesPerTable: number;
  readonly root: number;

  constructor(granuleBits: GranuleBits, ipaBits: number) {
    this.granuleBits = granuleBits;
    this.ipaBits = ipaBits;
    this.startLevel = startLevelFor(granuleBits, ipaBits);
    this.entriesPerTable = 2 ** strideOf(granuleBits);
    this.root = this.allocateTable();
  }

  /** Number of table pages in use (root included). */
  get tableCount(): number {
    return this.tables.length - this.freeTables.length;
  }

  /** Descriptor word pair of entry `index` of table `table`, for walks. */
  table(table: number): Uint32Array {
    return this.tables[table]!;
  }

  /** Index bits of the entry for `ipa` at `level`. */
  indexAt(ipa: number, level: number): number {
    const shift = levelShift(this.granuleBits, level);
    const bits = level === this.startLevel ? this.ipaBits - shift : strideOf(this.granuleBits);
    return Math.floor(ipa / POW2[shift]!) % POW2[bits]!;
  }

  /**
   * Installs one leaf (page or block) of 2^sizeBits bytes mapping `ipa` to `output`. The caller
   * (Stage2Domain) has already checked alignment and that nothing is mapped there.
   */
  installLeaf(ipa: number, output: number, sizeBits: number, perm: Perm): void {
    let table = this.root;
    for (let level = this.startLevel; level <= 3; level++) {
      const shift = levelShift(this.granuleBits, level);
      const entries = this.tables[table]!;
      const i = this.indexAt(ipa, level) * 2;
      if (shift === sizeBits) {
        const lo = entries[i]!;
        if ((lo & 1) === 0) this.liveEntries[table]!++;
        const leafType = level === 3 ? 0b11 : 0b01;
        const address = output;
        // S2AP[7:6]: bit 6 read, bit 7 write; AF[10] set (the host never takes access faults);
        // MemAttr[5:2] = 0b1111 normal write-back; SH[9:8] = inner shareable.
        const attrs =
          leafType |
          (0b1111 << 2) |
          ((perm & Perm.READ ? 1 : 0) << 6) |
          ((perm & Perm.WRITE ? 1 : 0) << 7) |
          (0b11 << 8) |
          (1 << 10);
        entries[i] = ((address % 0x1_0000_0000) | attrs) >>> 0;
        entries[i + 1] = Math.floor(address / 0x1_0000_0000) & 0xffff;
        return;
      }
      let lo = entries[i]!;
      if ((lo & 1) === 0) {
        const next = this.allocateTable();
        const address = next * POW2[this.granuleBits]!;
        entries[i] = ((address % 0x1_0000_0000) | 0b11) >>> 0;
        entries[i + 1] = Math.floor(address / 0x1_0000_0000) & 0xffff;
        this.liveEntries[table]!++;
        lo = entries[i]!;
      }
      table = this.tableIndexOf(lo, entries[i + 1]!);
    }
    throw new Error(`no level of granule 2^${this.granuleBits} has size 2^${sizeBits}`);
  }

  /**
   * Removes the leaf covering `ipa` that is exactly 2^sizeBits bytes (what installLeaf put
   * there), freeing tables that become empty. Returns whether a leaf was removed.
   */
  removeLeaf(ipa: number, sizeBits: number): boolean {
    const path: { table: number; index: number }[] = [];
    let table = this.root;
    for (let level = this.startLevel; level <= 3; level++) {
      const shift = levelShift(this.granuleBits, level);
      const entries = this.tables[table]!;
      const i = this.indexAt(ipa, level) * 2;
      const lo = entries[i]!;
      if ((lo & 1) === 0) return false;
      path.push({ table, index: i });
      if (shift === sizeBits) {
        entries[i] = 0;
        entries[i + 1] = 0;
        // Drop the entry and every table emptied on the way up (never the root).
        for (let p = path.length - 1; p >= 0; p--) {
          const { table: t, index } = path[p]!;
          if (p < path.length - 1) {
            this.tables[t]![index] = 0;
            this.tables[t]![index + 1] = 0;
          }
          this.liveEntries[t]!--;
          if (this.liveEntries[t]! > 0 || t === this.root) break;
          this.releaseTable(t);
        }
        return true;
      }
      if (level === 3 || (lo & 2) === 0) return false;
      table = this.tableIndexOf(lo, entries[i + 1]!);
    }
    return false;
  }

  /** Table index that a table descriptor (lo, hi) points to. */
  tableIndexOf(lo: number, hi: number): number {
    const address = (hi & 0xffff) * 0x1_0000_0000 + ((lo >>> 0) - ((lo >>> 0) % POW2[this.granuleBits]!));
    return address / POW2[this.granuleBits]!;
  }

  private allocateTable(): number {
    const words = this.entriesPerTable * 2;
    const reused = this.freeTables.pop();
    if (reused !== undefined) {
      this.tables[reused] = new Uint32Array(words);
      this.liveEntries[reused] = 0;
      return reused;
    }
    this.tables.push(new Uint32Array(words));
    this.liveEntries.push(0);
    return this.tables.length - 1;
  }

  private releaseTable(table: number): void {
    this.tables[table] = undefined;
    this.freeTables.push(table);
  }
}
