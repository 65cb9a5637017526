import { EAS_HI_VALID, EAS_LO_MASKED } from "./eas.js";
import { PQ } from "./esb.js";
import { KVM_XIVE_NR_IRQS, SOURCES_PER_BLOCK, SOURCE_BLOCK_SHIFT } from "./kvm-attributes.js";

/** Per-source status byte: PQ in bits 1:0 (xive.md §3), then the source's own flags. */
export const STATUS_PQ = 0x03;
/** XIVE_STATUS_ASSERTED: an LSI's line is asserted (xive.md §3, §6 "status"). */
export const STATUS_ASSERTED = 0x04;
/** The source is level-sensitive (LSI). */
export const STATUS_LSI = 0x08;

const BLOCK_MASK = SOURCES_PER_BLOCK - 1;

/**
 * One block of 1024 sources, created when its first source is (the KVM device allocates
 * `kvmppc_xive_src_block`s the same way, xive.md §1.2 "-ENOENT if there is no block").
 */
export class SourceBlock {
  /**
   * The block's arrays, in one buffer (EAS high words, low words, status bytes): pre-copy
   * compares a block with what it handed out in one memcmp (issue 14, XiveChangeTracker).
   */
  readonly bytes = Buffer.from(new ArrayBuffer(SOURCES_PER_BLOCK * 9));
  /** EAS high words (VALID, END block/index) and low words (MASKED, EISN), xive.md §4.1. */
  readonly easHi = new Uint32Array(this.bytes.buffer, 0, SOURCES_PER_BLOCK);
  readonly easLo = new Uint32Array(this.bytes.buffer, SOURCES_PER_BLOCK * 4, SOURCES_PER_BLOCK);
  readonly status = new Uint8Array(this.bytes.buffer, SOURCES_PER_BLOCK * 8, SOURCES_PER_BLOCK);
  /** Number of valid sources in the block. */
  validCount = 0;
  /**
   * Set by every write to the arrays; pre-copy's tracker clears it when it takes the block
   * (XiveChangeTracker), so that a read skips a block nobody wrote since without comparing it.
   */
  written = true;

  constructor() {
    this.status.fill(PQ.OFF);
  }
}

/**
 * The interrupt sources and their EAS: sparse (a block is allocated on first use), so a
 * device with the full KVM range of 1,048,576 sources costs nothing until sources exist.
 */
export class SourceTable {
  /** Indexed by irq >> 10; undefined until a source of that block is created. */
  readonly blocks: (SourceBlock | undefined)[] = new Array<SourceBlock | undefined>(
    KVM_XIVE_NR_IRQS >>> SOURCE_BLOCK_SHIFT,
  ).fill(undefined);
  private valid = 0;

  /** Number of valid (initialised) sources. */
  get validSources(): number {
    return this.valid;
  }

  blockOf(irq: number): SourceBlock | undefined {
    return this.blocks[irq >>> SOURCE_BLOCK_SHIFT];
  }

  hasBlock(irq: number): boolean {
    return irq >= 0 && irq < KVM_XIVE_NR_IRQS && this.blocks[irq >>> SOURCE_BLOCK_SHIFT] !== undefined;
  }

  isValid(irq: number): boolean {
    if (!(irq >= 0 && irq < KVM_XIVE_NR_IRQS)) return false;
    const block = this.blocks[irq >>> SOURCE_BLOCK_SHIFT];
    return block !== undefined && (block.easHi[irq & BLOCK_MASK]! & EAS_HI_VALID) !== 0;
  }

  /**
   * Creates (or re-inits) source `irq`: valid, EAS masked with no target, PQ=01. LSI and
   * ASSERTED are only ever set here, never cleared, as KVM's SOURCE attribute does (xive.md §1.2).
   */
  create(irq: number, lsi: boolean, asserted: boolean): void {
    const b = irq >>> SOURCE_BLOCK_SHIFT;
    let block = this.blocks[b];
    if (!block) {
      block = new SourceBlock();
      this.blocks[b] = block;
    }
    const i = irq & BLOCK_MASK;
    block.written = true;
    if ((block.easHi[i]! & EAS_HI_VALID) === 0) {
      block.validCount++;
      this.valid++;
    }
    let status = block.status[i]! & (STATUS_LSI | STATUS_ASSERTED);
    if (lsi) {
      status |= STATUS_LSI;
      if (asserted) status |= STATUS_ASSERTED;
    }
    block.status[i] = status | PQ.OFF;
    block.easHi[i] = EAS_HI_VALID;
    block.easLo[i] = EAS_LO_MASKED;
  }

  status(irq: number): number {
    return this.blocks[irq >>> SOURCE_BLOCK_SHIFT]?.status[irq & BLOCK_MASK] ?? 0;
  }

  /**
   * Records an LSI's line level as QEMU's source status keeps it beside an in-kernel device
   * (kvmppc_xive_source_set_irq): the ASSERTED bit only, nothing is triggered.
   */
  setAsserted(irq: number, asserted: boolean): void {
    const block = this.blocks[irq >>> SOURCE_BLOCK_SHIFT];
    if (block === undefined) return;
    const i = irq & BLOCK_MASK;
    block.written = true;
    block.status[i] = asserted ? block.status[i]! | STATUS_ASSERTED : block.status[i]! & ~STATUS_ASSERTED;
  }

  /** Sets PQ and returns the old PQ (the SET_PQ_xx semantics). */
  setPq(irq: number, pq: number): number {
    const block = this.blocks[irq >>> SOURCE_BLOCK_SHIFT]!;
    const i = irq & BLOCK_MASK;
    const old = block.status[i]!;
    block.written = true;
    block.status[i] = (old & ~STATUS_PQ) | (pq & STATUS_PQ);
    return old & STATUS_PQ;
  }

  easHi(irq: number): number {
    return this.blocks[irq >>> SOURCE_BLOCK_SHIFT]?.easHi[irq & BLOCK_MASK] ?? 0;
  }

  easLo(irq: number): number {
    return this.blocks[irq >>> SOURCE_BLOCK_SHIFT]?.easLo[irq & BLOCK_MASK] ?? 0;
  }

  setEas(irq: number, hi: number, lo: number): void {
    const block = this.blocks[irq >>> SOURCE_BLOCK_SHIFT]!;
    block.written = true;
    block.easHi[irq & BLOCK_MASK] = hi >>> 0;
    block.easLo[irq & BLOCK_MASK] = lo >>> 0;
  }

  /** Calls `visit` for every valid source, ascending. */
  forEachValid(visit: (irq: number, block: SourceBlock, index: number) => void): void {
    for (let b = 0; b < this.blocks.length; b++) {
      const block = this.blocks[b];
      if (!block || block.validCount === 0) continue;
      for (let i = 0; i < SOURCES_PER_BLOCK; i++) {
        if (block.easHi[i]! & EAS_HI_VALID) visit((b << SOURCE_BLOCK_SHIFT) | i, block, i);
      }
    }
  }
}
