import { GuestMemoryError, type GuestMemory } from "@vplane/guest-memory";
import { POW2 } from "./bits.js";
import { Perm } from "./access-permission.js";
import type { TranslationTable, ContextDescriptor } from "./context-descriptor.js";
import { EventClass, EventId } from "./event-record.js";
import { TlbEntry, type Iotlb, type TlbContext } from "./iotlb.js";
import type { Stage2Domain } from "./stage2-domain.js";
import { Stage2WalkResult, walkStage2 } from "./stage2-walk.js";
import { blockAllowed, levelShift, strideOf, tlbGranuleCode } from "./translation-granule.js";

/** translateIpa() results below zero. */
export const IPA_FAULT = -1;
export const IPA_DOORBELL = -2;

/** The fault a walk stopped on: event number, stage, class and addresses (digest §3.4). */
export class WalkFault {
  id = 0;
  stage2 = false;
  eventClass: number = EventClass.IN;
  /** Faulting IPA of a stage-2 fault, else -1. */
  ipa = -1;
  /** Address of a failed fetch (F_WALK_EABT, F_CD_FETCH), else -1. */
  fetchAddress = -1;

  set(id: number, stage2: boolean, eventClass: number, ipa = -1, fetchAddress = -1): void {
    this.id = id;
    this.stage2 = stage2;
    this.eventClass = eventClass;
    this.ipa = ipa;
    this.fetchAddress = fetchAddress;
  }
}

/**
 * The walks of one SMMU (the walker block of QEMU's smmu-common split): stage 2 of an IPA
 * (cached as ASID -1 entries, digest §4.2 step 5), the stage-1 walk whose every table address
 * goes through stage 2, and fetches of guest structures (CDs, L1 CD descriptors) through stage 2.
 * Results land in fields so the walk allocates nothing but the IOTLB entries it inserts.
 */
export class NestedWalker {
  readonly fault = new WalkFault();
  /** The stage-2 entry of the last successful translateIpa(). */
  lastStage2: TlbEntry | undefined;
  lastStage2Hit = false;
  /** Stage-1 walk output. */
  s1OutBase = 0;
  s1SizeBits = 0;
  s1Level = 0;
  s1Perm = 0;
  /** False while computing a fresh (uncached) translation: caches are neither read nor filled. */
  useCaches = true;
  readonly s2Tg: number;
  readonly s2StartLevel: number;
  private readonly s2 = new Stage2WalkResult();
  private s2Context: TlbContext;
  private s2Epoch: number;

  constructor(
    private readonly memory: GuestMemory,
    private readonly domain: Stage2Domain,
    private readonly iotlb: Iotlb,
    /** Stage-2 output size (S2PS) in bits. */
    private readonly outputBits: number,
  ) {
    this.s2Tg = tlbGranuleCode(domain.granuleBits);
    this.s2StartLevel = domain.table.startLevel;
    this.s2Context = iotlb.context(-1, domain.vmid);
    this.s2Epoch = iotlb.epoch;
  }

  /**
   * Stage 2 of `ipa` for an access needing `need`: returns the output address, IPA_DOORBELL for
   * the bound MSI doorbell, or IPA_FAULT with `fault` set (stage 2, the given class, the IPA).
   * S2AP must include every requested permission (digest §4.2 "Stage 2").
   */
  translateIpa(ipa: number, need: number, eventClass: number): number {
    const domain = this.domain;
    if (domain.msiBinding !== undefined && domain.isDoorbell(ipa)) return IPA_DOORBELL;
    let entry: TlbEntry | undefined;
    if (this.useCaches) {
      if (this.s2Epoch !== this.iotlb.epoch) {
        this.s2Context = this.iotlb.context(-1, domain.vmid);
        this.s2Epoch = this.iotlb.epoch;
      }
      entry = this.iotlb.lookup(this.s2Context, 0, this.s2Tg, this.s2StartLevel, ipa);
    }
    this.lastStage2Hit = entry !== undefined;
    if (entry === undefined) {
      const w = this.s2;
      walkStage2(domain.table, ipa, this.outputBits, w);
      if (w.fault !== 0) {
        this.fault.set(w.fault, true, eventClass, ipa);
        return IPA_FAULT;
      }
      entry = new TlbEntry(
        w.outBase,
        w.ipaBase,
        w.sizeBits,
        w.perm,
        Perm.READ_WRITE,
        w.level,
        domain.granuleBits,
      );
      if (this.useCaches && !domain.overlapsDoorbell(w.ipaBase, w.sizeBits)) {
        this.iotlb.insert(this.s2Context, 0, this.s2Tg, w.level, ipa, entry);
      }
    }
    if ((entry.perm & need) !== need) {
      this.fault.set(EventId.F_PERMISSION, true, eventClass, ipa);
      return IPA_FAULT;
    }
    this.lastStage2 = entry;
    return entry.outBase + (ipa - entry.ipaBase);
  }

  /**
   * The stage-1 walk (digest §4.2 "Stage 1") of `va` (already reduced to its region) through
   * table `tt`: each descriptor address is an IPA translated by stage 2 (a fault there is a
   * stage-2 fault of class TT); a failed read is F_WALK_EABT; an invalid descriptor, a reserved
   * level-3 type or a block where the granule allows none is F_TRANSLATION; APTable[1] with HAD
   * clear takes write away below; at the leaf AF clear without AFFD is F_ACCESS, checked before
   * the AP[2] write check (F_PERMISSION), then an output beyond the CD's OAS is F_ADDR_SIZE.
   */
  walkStage1(cd: ContextDescriptor, tt: TranslationTable, va: number, write: boolean): boolean {
    const g = tt.granuleBits;
    const stride = strideOf(g);
    const granuleSize = POW2[g]!;
    const oasLimit = POW2[cd.oasBits]!;
    let tableIpa = tt.ttb;
    let writeAllowed = true;
    for (let level = tt.startLevel; level <= 3; level++) {
      const shift = levelShift(g, level);
      const bits = level === tt.startLevel ? tt.inputBits - shift : stride;
      const index = Math.floor(va / POW2[shift]!) % POW2[bits]!;
      const descriptorIpa = tableIpa + index * 8;
      const pa = this.translateIpa(descriptorIpa, Perm.READ, EventClass.TT);
      if (pa === IPA_FAULT) return false;
      if (pa === IPA_DOORBELL) {
        this.fault.set(EventId.F_WALK_EABT, false, EventClass.TT, -1, descriptorIpa);
        return false;
      }
      let lo: number;
      let hi: number;
      try {
        // One 8-byte read rather than two 4-byte ones: half the bounds checks and copies.
        const b = this.memory.read(pa, 8);
        lo = b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
        hi = b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24);
      } catch (error) {
        if (!(error instanceof GuestMemoryError)) throw error;
        this.fault.set(EventId.F_WALK_EABT, false, EventClass.TT, -1, pa);
        return false;
      }
      const low = lo >>> 0;
      const address = (hi & 0xffff) * 0x1_0000_0000 + (low - (low % granuleSize));
      if ((lo & 1) === 0) return this.stage1Fault(EventId.F_TRANSLATION, level);
      if (level < 3 && (lo & 2) !== 0) {
        if (!tt.had && ((hi >>> 30) & 1) === 1) writeAllowed = false;
        if (address >= oasLimit) return this.stage1Fault(EventId.F_ADDR_SIZE, level);
        tableIpa = address;
        continue;
      }
      if (level === 3 ? (lo & 2) === 0 : !blockAllowed(g, level))
        return this.stage1Fault(EventId.F_TRANSLATION, level);
      if ((lo & (1 << 10)) === 0 && !cd.affd) return this.stage1Fault(EventId.F_ACCESS, level);
      if ((lo & (1 << 7)) !== 0) writeAllowed = false;
      if (write && !writeAllowed) return this.stage1Fault(EventId.F_PERMISSION, level);
      const outBase = address - (address % POW2[shift]!);
      if (outBase >= oasLimit) return this.stage1Fault(EventId.F_ADDR_SIZE, level);
      this.s1OutBase = outBase;
      this.s1SizeBits = shift;
      this.s1Level = level;
      this.s1Perm = writeAllowed ? Perm.READ_WRITE : Perm.READ;
      return true;
    }
    return this.stage1Fault(EventId.F_TRANSLATION, 3);
  }

  /**
   * Reads `words` little-endian 64-bit words of a guest structure at IPA `ipa` through stage 2
   * (class CD): a stage-2 fault is reported as such; the doorbell or a failed read is F_CD_FETCH
   * with the fetch address. Returns undefined on a fault.
   */
  fetchStructure(ipa: number, words: number): bigint[] | undefined {
    const pa = this.translateIpa(ipa, Perm.READ, EventClass.CD);
    if (pa === IPA_FAULT) return undefined;
    if (pa === IPA_DOORBELL) {
      this.fault.set(EventId.F_CD_FETCH, false, EventClass.CD, -1, ipa);
      return undefined;
    }
    try {
      const out: bigint[] = [];
      for (let i = 0; i < words; i++) out.push(this.memory.readU64LE(pa + i * 8));
      return out;
    } catch (error) {
      if (!(error instanceof GuestMemoryError)) throw error;
      this.fault.set(EventId.F_CD_FETCH, false, EventClass.CD, -1, pa);
      return undefined;
    }
  }

  private stage1Fault(id: number, _level: number): false {
    this.fault.set(id, false, EventClass.IN);
    return false;
  }
}
