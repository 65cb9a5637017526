import { EAS_HI_VALID } from "./eas.js";
import { Errno } from "@vplane/model-kit";
import { ESB_FORWARD, PQ, decodeEsbLoad, decodeEsbStore, esbEoi, esbTrigger, setPqValueOf } from "./esb.js";
import { KVM_XIVE_NR_IRQS, SOURCE_BLOCK_SHIFT, SOURCES_PER_BLOCK } from "./kvm-attributes.js";
import {
  STATUS_ASSERTED,
  STATUS_LSI,
  STATUS_PQ,
  type SourceBlock,
  type SourceTable,
} from "./source-table.js";
import { StoppedTriggers, stoppedTriggerLimit } from "./stopped-triggers.js";
import { allOnes } from "./thread-context.js";
import { XiveError } from "./xive-error.js";
import { TriggerOutcome, type TriggerOutcomeValue, type XiveRouter } from "./xive-router.js";

/**
 * What a quiesced device keeps until it resumes (xive.md §6): the PQ every valid source had
 * when it was stopped, and the triggers that arrived since.
 */
export interface XiveStopState {
  /** Saved PQ of each source, per block of 1024 (indexed by irq >> 10). */
  readonly savedPq: Map<number, Uint8Array>;
  readonly triggers: StoppedTriggers;
}

/**
 * The interrupt sources of a XIVE device (QEMU's XiveSource): the device side (a device raises
 * or lowers a line: MSI trigger, LSI level), the ESB MMIO pages the guest loads from and stores
 * to, and the latch that holds triggers while the device is quiesced for migration. A source
 * the PQ machine forwards goes to the router. The trigger path allocates nothing.
 */
export class XiveSource {
  /** Set while the device is quiesced for migration (xive.md §6); see quiesce(). */
  stopped: XiveStopState | undefined;

  constructor(
    /** The sources' status (PQ, LSI, asserted) and EAS. */
    readonly sources: SourceTable,
    private readonly router: XiveRouter,
    /** XIVE_SRC_STORE_EOI: store-EOI on the management page works. */
    private readonly storeEoi: boolean,
  ) {}

  // ---------------------------------------------------------------- device side (irqfd)

  /**
   * xive_source_set_irq (xive.md §3): an MSI triggers on a rising call; an LSI's level sets or
   * clears ASSERTED and an assert forwards only from PQ 00 (to 10; Q is never set).
   */
  setIrq(irq: number, level: boolean): TriggerOutcomeValue {
    if (!(irq >= 0 && irq < KVM_XIVE_NR_IRQS)) return TriggerOutcome.NO_SOURCE;
    const block = this.sources.blocks[irq >>> SOURCE_BLOCK_SHIFT];
    if (block === undefined) return TriggerOutcome.NO_SOURCE;
    const i = irq & (SOURCES_PER_BLOCK - 1);
    if ((block.easHi[i]! & EAS_HI_VALID) === 0) return TriggerOutcome.NO_SOURCE;
    const status = block.status[i]!;
    if (this.stopped !== undefined) return this.latchSetIrq(this.stopped, irq, block, i, level);
    block.written = true;
    if (status & STATUS_LSI) {
      if (!level) {
        block.status[i] = status & ~STATUS_ASSERTED;
        return TriggerOutcome.COALESCED;
      }
      return this.lsiTrigger(block, i) ? this.router.notify(block, i) : TriggerOutcome.COALESCED;
    }
    if (!level) return TriggerOutcome.COALESCED;
    const result = esbTrigger(status);
    block.status[i] = (status & ~STATUS_PQ) | (result & STATUS_PQ);
    return result & ESB_FORWARD ? this.router.notify(block, i) : TriggerOutcome.COALESCED;
  }

  /**
   * A device trigger while quiesced: the PQ machine runs on the latched PQ (10 → 11; 01 stays
   * off) and an LSI's level is kept, but nothing is forwarded; the trigger is logged for resume.
   */
  private latchSetIrq(
    stopped: XiveStopState,
    irq: number,
    block: SourceBlock,
    i: number,
    level: boolean,
  ): TriggerOutcomeValue {
    this.latchBlock(stopped, irq >>> SOURCE_BLOCK_SHIFT);
    block.written = true;
    const status = block.status[i]!;
    const lsi = (status & STATUS_LSI) !== 0;
    if (lsi) block.status[i] = level ? status | STATUS_ASSERTED : status & ~STATUS_ASSERTED;
    else if (level) block.status[i] = (status & ~STATUS_PQ) | (esbTrigger(status) & STATUS_PQ);
    if (level) stopped.triggers.record(irq, stoppedTriggerLimit(lsi));
    return TriggerOutcome.COALESCED;
  }

  /** Sets ASSERTED; forwards only from PQ 00, moving to 10 (xive.md §3 LSI). Its callers mark the block written. */
  private lsiTrigger(block: SourceBlock, i: number): boolean {
    const status = block.status[i]! | STATUS_ASSERTED;
    if ((status & STATUS_PQ) === PQ.RESET) {
      block.status[i] = (status & ~STATUS_PQ) | PQ.PENDING;
      return true;
    }
    block.status[i] = status;
    return false;
  }

  /** The ESB trigger of the trigger page and of management stores 0x000-0x3FF (MSI rules for all). */
  private esbTriggerAt(block: SourceBlock, i: number): TriggerOutcomeValue {
    const status = block.status[i]!;
    const result = esbTrigger(status);
    block.written = true;
    block.status[i] = (status & ~STATUS_PQ) | (result & STATUS_PQ);
    return result & ESB_FORWARD ? this.router.notify(block, i) : TriggerOutcome.COALESCED;
  }

  /** ESB EOI; an LSI still asserted re-triggers (xive.md §3). Returns 1 if an event was forwarded. */
  private esbEoiAt(block: SourceBlock, i: number): number {
    const status = block.status[i]!;
    const result = esbEoi(status);
    block.written = true;
    block.status[i] = (status & ~STATUS_PQ) | (result & STATUS_PQ);
    let forward = (result & ESB_FORWARD) !== 0;
    if (status & STATUS_LSI && status & STATUS_ASSERTED) forward = this.lsiTrigger(block, i);
    if (forward) this.router.notify(block, i);
    return forward ? 1 : 0;
  }

  // ---------------------------------------------------------------- ESB pages (§1.5, §3)

  private esbBlock(irq: number, size: number, offset: number): SourceBlock {
    if (!this.sources.isValid(irq)) {
      // KVM answers a fault on the ESB page of an invalid source with SIGBUS (anchor A4).
      throw new XiveError({
        code: "FAILED_PRECONDITION",
        reason: "ESB_PAGE_FAULT",
        message: `source ${irq} is not valid: its ESB pages fault (SIGBUS)`,
        errno: Errno.ENXIO,
        field: "irq",
      });
    }
    if (size !== 8) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "ESB_ACCESS_SIZE",
        message: `ESB accesses are 8 bytes, got ${size}`,
        field: "size",
      });
    }
    if (!(Number.isInteger(offset) && offset >= 0 && offset < 1 << 16)) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "ESB_OFFSET_OUT_OF_RANGE",
        message: `ESB page offset must be below 0x10000, got ${offset}`,
        field: "offset",
      });
    }
    // A stopped device's PQs are touched only once latched (quiesce).
    if (this.stopped !== undefined) this.latchBlock(this.stopped, irq >>> SOURCE_BLOCK_SHIFT);
    return this.sources.blockOf(irq)!;
  }

  /**
   * An 8-byte load from a source's ESB page (xive.md §3): the trigger page reads all ones; the
   * management page EOIs (returns 0|1), GETs PQ, or sets PQ and returns the old PQ.
   */
  esbLoad(irq: number, managementPage: boolean, offset: number, size = 8): bigint {
    const block = this.esbBlock(irq, size, offset);
    if (!managementPage) return allOnes(8);
    const i = irq & (SOURCES_PER_BLOCK - 1);
    switch (decodeEsbLoad(offset)) {
      case "EOI":
        return BigInt(this.esbEoiAt(block, i));
      case "GET":
        return BigInt(block.status[i]! & STATUS_PQ);
      case "SET_PQ":
        return BigInt(this.sources.setPq(irq, setPqValueOf(offset & 0xfff)));
    }
  }

  /**
   * An 8-byte store to a source's ESB page (xive.md §3): anywhere on the trigger page triggers;
   * on the management page 0x000-0x3FF triggers, 0x400-0x7FF is store-EOI (ignored unless the
   * source has STORE_EOI), 0x800-0xBFF injects (forward without PQ), 0xC00-0xFFF sets PQ.
   * Returns what became of the event a trigger or inject store raised; undefined for the others.
   */
  esbStore(
    irq: number,
    managementPage: boolean,
    offset: number,
    _value: bigint,
    size = 8,
  ): TriggerOutcomeValue | undefined {
    const block = this.esbBlock(irq, size, offset);
    const i = irq & (SOURCES_PER_BLOCK - 1);
    if (!managementPage) return this.esbTriggerAt(block, i);
    switch (decodeEsbStore(offset)) {
      case "TRIGGER":
        return this.esbTriggerAt(block, i);
      case "STORE_EOI":
        if (this.storeEoi) this.esbEoiAt(block, i);
        return undefined;
      case "INJECT":
        return this.router.notify(block, i);
      case "SET_PQ":
        this.sources.setPq(irq, setPqValueOf(offset & 0xfff));
        return undefined;
    }
  }

  // ---------------------------------------------------------------- migration (§6)

  /**
   * Latches the sources as QEMU's change-state handler does when it stops the KVM device
   * (xive.md §6): every valid source's PQ is saved and, unless it is 01 (off), set to 10 so
   * that a trigger is latched (10 → 11) rather than forwarded. K-DOC masks with 01 instead
   * (xive.md §10.1), which would lose those triggers. Idempotent: a second call keeps the PQs
   * saved by the first.
   *
   * The latch is lazy (issue 14: a stop must not cost the VM's size): a block of sources is
   * latched when something first touches it while stopped (latchBlock); until then its PQs read
   * as latched (pqOf, savedPqOf), which is the same state without the walk.
   */
  quiesce(): void {
    if (this.stopped !== undefined) return;
    this.stopped = { savedPq: new Map(), triggers: new StoppedTriggers() };
  }

  /**
   * Latches block `b` of a stopped device if it is not yet: saves its valid sources' PQs and sets
   * each to 10 unless 01. Returns the block's saved PQs (undefined: no such block).
   */
  latchBlock(stopped: XiveStopState, b: number): Uint8Array | undefined {
    let saved = stopped.savedPq.get(b);
    if (saved !== undefined) return saved;
    const block = this.sources.blocks[b];
    if (block === undefined) return undefined;
    saved = new Uint8Array(SOURCES_PER_BLOCK);
    // No SourceBlock.written mark: the latch changes no record (sourceRecord reads it either way).
    for (let i = 0; i < SOURCES_PER_BLOCK; i++) {
      if ((block.easHi[i]! & EAS_HI_VALID) === 0) continue;
      const status = block.status[i]!;
      saved[i] = status & STATUS_PQ;
      block.status[i] = (status & ~STATUS_PQ) | latchedPq(status & STATUS_PQ);
    }
    stopped.savedPq.set(b, saved);
    return saved;
  }

  /** Source `irq`'s PQ as read now: a stopped device's latched one, latched block or not. */
  pqOf(irq: number): number {
    const pq = this.sources.status(irq) & STATUS_PQ;
    const stopped = this.stopped;
    if (stopped === undefined || stopped.savedPq.has(irq >>> SOURCE_BLOCK_SHIFT)) return pq;
    return latchedPq(pq);
  }

  /** The PQ source `irq` had when the device was quiesced (undefined when running or no block). */
  savedPqOf(irq: number): number | undefined {
    const stopped = this.stopped;
    if (stopped === undefined || !this.sources.hasBlock(irq)) return undefined;
    const saved = stopped.savedPq.get(irq >>> SOURCE_BLOCK_SHIFT);
    return saved ? saved[irq & (SOURCES_PER_BLOCK - 1)] : this.sources.status(irq) & STATUS_PQ;
  }

  /**
   * Lets quiesced sources run again (xive.md §6 resume): every valid source gets its saved PQ
   * back (the SET_PQ load QEMU issues; a block never latched still has it), then the triggers
   * that arrived while stopped are replayed in arrival order, so that what reaches the queues and
   * presenters is what would have had the device kept running. QEMU instead re-triggers, in
   * source order, each source whose saved PQ was 00 and whose PQ reads 11; the replay gives the
   * same result for one trigger and also keeps a second one (Q) and the order. Running sources
   * are left as they are.
   */
  resume(): void {
    const stopped = this.stopped;
    if (stopped === undefined) return;
    this.stopped = undefined;
    for (const [b, saved] of stopped.savedPq) {
      const block = this.sources.blocks[b];
      if (block === undefined) continue;
      block.written = true;
      for (let i = 0; i < SOURCES_PER_BLOCK; i++) {
        if (block.easHi[i]! & EAS_HI_VALID) block.status[i] = (block.status[i]! & ~STATUS_PQ) | saved[i]!;
      }
    }
    for (const irq of stopped.triggers.order) this.replayTrigger(irq);
  }

  /**
   * One logged trigger, as it would have run: an MSI's ESB trigger; an LSI's assertion from PQ 00.
   * Its block is marked written: the trigger latched it, and resume marks every latched block.
   */
  private replayTrigger(irq: number): void {
    const block = this.sources.blockOf(irq);
    if (block === undefined) return;
    const i = irq & (SOURCES_PER_BLOCK - 1);
    const status = block.status[i]!;
    if ((status & STATUS_LSI) === 0) {
      this.esbTriggerAt(block, i);
      return;
    }
    // The line keeps the level it has now; only the forwarding of the first assertion replays.
    if ((status & STATUS_PQ) !== PQ.RESET) return;
    block.status[i] = (status & ~STATUS_PQ) | PQ.PENDING;
    this.router.notify(block, i);
  }
}

/** The PQ a quiesce latches `pq` to: 10, unless 01 (off), which stays (xive.md §6). */
export function latchedPq(pq: number): number {
  return pq === PQ.OFF ? PQ.OFF : PQ.PENDING;
}
