import { POW2 } from "./bits.js";
import { levelShift } from "./translation-granule.js";

/**
 * One cached translation: 2^sizeBits bytes of input starting at the key's address map to
 * outBase with the permissions of both stages kept apart (digest §4.2 "Nested": perm = S1,
 * parentPerm = S2), so a hit can say which stage refuses a write.
 */
export class TlbEntry {
  constructor(
    /** Output (guest-RAM backing) address of the entry's first byte. */
    readonly outBase: number,
    /** IPA of the entry's first byte (the stage-2 input), for stage-2 faults taken on a hit. */
    readonly ipaBase: number,
    readonly sizeBits: number,
    /** Stage-1 permission (for stage-2-only entries: the stage-2 permission). */
    readonly perm: number,
    /** Stage-2 permission of a nested entry; READ_WRITE for a single-stage entry. */
    readonly parentPerm: number,
    /** Walk level and granule the entry came from (for dumps and exact invalidation). */
    readonly level: number,
    readonly granuleBits: number,
  ) {}
}

/** Slot of a context's per-(region, granule, level) map: region * 16 + tg * 4 + level. */
function slotOf(region: number, tg: number, level: number): number {
  return region * 16 + tg * 4 + level;
}

/** Level shift of each slot's entries (indexed by slot & 15). */
const SLOT_SHIFT: readonly number[] = Array.from({ length: 16 }, (_, s) => {
  const tg = s >> 2;
  return tg === 0 ? 0 : levelShift(tg * 2 + 10, s & 3);
});

/** The entries of one (ASID, VMID) pair; ASID -1 holds stage-2 entries (QEMU's convention). */
export class TlbContext {
  /** Maps keyed by input address >> level shift, one per slot. */
  readonly maps: (Map<number, TlbEntry> | undefined)[] = new Array<Map<number, TlbEntry> | undefined>(32);
  /** Bit s set when maps[s] may hold entries (lets a lookup skip empty levels). */
  mask = 0;
  constructor(
    readonly asid: number,
    readonly vmid: number,
  ) {}
}

/**
 * The IOTLB (digest §4.3): entries keyed by {ASID, VMID, address aligned to the entry, granule,
 * level}; a lookup probes each level from the walk's start level to 3 (and, nested, the stage-2
 * granule too). Bounded: an insert into a full TLB flushes everything first (QEMU's
 * SMMU_IOTLB_MAX_SIZE rule). Keys are numbers and maps are per context, so a hit allocates nothing.
 */
export class Iotlb {
  private readonly contexts = new Map<number, TlbContext>();
  private count = 0;
  /** Bumped when contexts are dropped; holders of a TlbContext compare it before use. */
  epoch = 0;
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** The context of (asid, vmid), created on first use. asid -1 = stage-2 entries. */
  context(asid: number, vmid: number): TlbContext {
    const key = (asid + 1) * 0x10000 + vmid;
    let ctx = this.contexts.get(key);
    if (!ctx) {
      ctx = new TlbContext(asid, vmid);
      this.contexts.set(key, ctx);
    }
    return ctx;
  }

  /** The entry covering `va` in region `region` for granule code `tg`, probing levels from `startLevel`. */
  lookup(ctx: TlbContext, region: number, tg: number, startLevel: number, va: number): TlbEntry | undefined {
    const mask = ctx.mask;
    if (mask === 0) return undefined;
    for (let level = startLevel; level <= 3; level++) {
      const slot = region * 16 + tg * 4 + level;
      if (((mask >>> slot) & 1) === 0) continue;
      const entry = ctx.maps[slot]!.get(Math.floor(va / POW2[SLOT_SHIFT[slot & 15]!]!));
      if (entry !== undefined) return entry;
    }
    return undefined;
  }

  insert(ctx: TlbContext, region: number, tg: number, level: number, va: number, entry: TlbEntry): void {
    if (this.count >= this.capacity) this.invalidateAll();
    const slot = slotOf(region, tg, level);
    let map = ctx.maps[slot];
    if (!map) {
      map = new Map();
      ctx.maps[slot] = map;
    }
    const key = Math.floor(va / POW2[SLOT_SHIFT[slot & 15]!]!);
    const before = map.size;
    map.set(key, entry);
    this.count += map.size - before;
    ctx.mask |= 1 << slot;
  }

  /** Everything (TLBI_NSNH_ALL on the physical SMMU; QEMU's flush when full). */
  invalidateAll(): void {
    for (const ctx of this.contexts.values()) this.clearContext(ctx);
    this.count = 0;
    // Contexts of ASIDs no longer in use would pile up; drop them all now and then.
    if (this.contexts.size > 4096) {
      this.contexts.clear();
      this.epoch++;
    }
  }

  /** Stage-1 entries of a VMID (TLBI_NH_ALL: asid >= 0 only). */
  invalidateVmidStage1(vmid: number): void {
    for (const ctx of this.contexts.values()) if (ctx.vmid === vmid && ctx.asid >= 0) this.clearContext(ctx);
  }

  /** Stage-1 and stage-2 entries of a VMID (TLBI_S12_VMALL). */
  invalidateVmid(vmid: number): void {
    for (const ctx of this.contexts.values()) if (ctx.vmid === vmid) this.clearContext(ctx);
  }

  /** One ASID of one VMID (TLBI_NH_ASID). */
  invalidateAsid(asid: number, vmid: number): void {
    const ctx = this.contexts.get((asid + 1) * 0x10000 + vmid);
    if (ctx) this.clearContext(ctx);
  }

  /**
   * Entries overlapping input range [va, va + length) of `region`: asid >= 0 one ASID
   * (TLBI_NH_VA), asid undefined every ASID of the VMID (TLBI_NH_VAA), asid -1 the stage-2
   * entries (TLBI_S2_IPA). Overlap is always used: TTL is a hint, and invalidating more is allowed.
   */
  invalidateRange(asid: number | undefined, vmid: number, region: number, va: number, length: number): void {
    for (const ctx of this.contexts.values()) {
      if (ctx.vmid !== vmid || ctx.mask === 0) continue;
      if (asid === undefined ? ctx.asid < 0 : ctx.asid !== asid) continue;
      for (let s = region * 16; s < region * 16 + 16; s++) {
        if (((ctx.mask >>> s) & 1) === 0) continue;
        const map = ctx.maps[s]!;
        const unit = POW2[SLOT_SHIFT[s & 15]!]!;
        const first = Math.floor(va / unit);
        const last = Math.floor((va + length - 1) / unit);
        if (last - first < map.size) {
          for (let k = first; k <= last; k++) if (map.delete(k)) this.count--;
        } else {
          for (const k of map.keys()) {
            if (k >= first && k <= last) {
              map.delete(k);
              this.count--;
            }
          }
        }
      }
    }
  }

  /** Every live entry, for dumps and tests. */
  *entries(): Generator<{ asid: number; vmid: number; region: number; va: number; entry: TlbEntry }> {
    for (const ctx of this.contexts.values()) {
      for (let s = 0; s < 32; s++) {
        const map = ctx.maps[s];
        if (!map) continue;
        const unit = POW2[SLOT_SHIFT[s & 15]!]!;
        for (const [k, entry] of map)
          yield { asid: ctx.asid, vmid: ctx.vmid, region: s >> 4, va: k * unit, entry };
      }
    }
  }

  private clearContext(ctx: TlbContext): void {
    let mask = ctx.mask;
    while (mask !== 0) {
      const s = 31 - Math.clz32(mask);
      mask &= ~(1 << s);
      const map = ctx.maps[s]!;
      this.count -= map.size;
      map.clear();
    }
    ctx.mask = 0;
  }
}
