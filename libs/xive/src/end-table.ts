import type { GuestMemory } from "@vplane/guest-memory";
import { ESB_FORWARD, PQ, esbEoi, esbTrigger } from "./esb.js";

/** END word 0 (xive.md §4.1). */
export const END_W0_VALID = 0x8000_0000;
export const END_W0_ENQUEUE = 0x4000_0000;
export const END_W0_UCOND_NOTIFY = 0x2000_0000;
export const END_W0_BACKLOG = 0x1000_0000;
export const END_W0_ESCALATE = 0x0400_0000;
export const END_W0_SILENT_ESC = 0x0100_0000;
export const END_W0_QSIZE = 0x000f_0000;
export const END_W0_QSIZE_SHIFT = 16;
/** END word 1: ESn, ESe, generation, page offset (qindex). */
export const END_W1_ESN = 0xc000_0000;
export const END_W1_ESN_SHIFT = 30;
export const END_W1_ESE = 0x3000_0000;
export const END_W1_ESE_SHIFT = 28;
export const END_W1_GENERATION = 0x0040_0000;
export const END_W1_GENERATION_SHIFT = 22;
export const END_W1_PAGE_OFF = 0x003f_ffff;
/** END word 6: NVT block and index; word 7: F0 priority. */
export const END_W6_NVT_INDEX = 0x0007_ffff;
export const END_W7_F0_PRIORITY = 0x00ff_0000;
export const END_W7_F0_PRIORITY_SHIFT = 16;

/** sPAPR NVT index of a vCPU: 0x400 + vcpu id (xive.md §4.2 sPAPR mapping). */
export const SPAPR_NVT_BASE = 0x400;

/** Queue sizes are log2 bytes; entries = 1 << (qshift - 2), i.e. 1 << (QSIZE + 10) (xive.md §4.1). */
export function queueEntries(qshift: number): number {
  return 1 << (qshift - 2);
}

/** XIVE_Q_GAP: KVM keeps two entries of every queue free when it counts targets (xive.md §1.3). */
export const XIVE_Q_GAP = 2;

/** Sources a queue of `qshift` takes before KVM looks elsewhere (xive_try_pick_queue's max). */
export function queueSlots(qshift: number): number {
  return queueEntries(qshift) - XIVE_Q_GAP;
}

/** ENDs per `written` flag (EndTable.written): 1 << RANGE_SHIFT. */
const RANGE_SHIFT = 10;
export const ENDS_PER_RANGE = 1 << RANGE_SHIFT;

/** The END fields a caller reads back (decoded). */
export interface EndState {
  index: number;
  valid: boolean;
  enqueue: boolean;
  unconditionalNotify: boolean;
  /** log2 of the queue size in bytes (QSIZE + 12), 0 when not enqueuing. */
  qshift: number;
  qaddr: number;
  qindex: number;
  generation: number;
  esn: number;
  ese: number;
  nvt: number;
  priority: number;
  /** Entries written since the queue was configured (for overflow accounting by a reader). */
  enqueued: number;
}

/**
 * The Event Notification Descriptors (one per vCPU and priority on sPAPR: index = server << 3 |
 * priority) and the event queues they write into guest RAM (xive.md §4.1, §4.2 steps 3-7).
 * Words live in typed arrays; only the fields the model uses are kept.
 */
export class EndTable {
  readonly w0: Uint32Array;
  readonly w1: Uint32Array;
  readonly qaddr: Float64Array;
  readonly w6: Uint32Array;
  readonly w7: Uint32Array;
  readonly enqueued: Float64Array;
  /** KVM accounting: sources targeted at the queue (xive.md §1.3 target selection). */
  readonly kvmCount: Uint32Array;
  /** Queue writes that failed (guest RAM closed or out of range); QEMU logs and goes on. */
  writeFailures = 0;
  /**
   * Per range of ENDS_PER_RANGE ENDs, set by every write to an END's words in it (issue 14: a
   * pre-copy read compares only the ranges something wrote since it took their flags,
   * XiveChangeTracker). The methods below set it. The import's apply writes the counts directly
   * (applyXiveChanges): an imported device's first pre-copy read compares every range anyway.
   */
  readonly written: Uint8Array;

  constructor(
    readonly size: number,
    private readonly memory: GuestMemory,
  ) {
    this.w0 = new Uint32Array(size);
    this.w1 = new Uint32Array(size);
    this.qaddr = new Float64Array(size);
    this.w6 = new Uint32Array(size);
    this.w7 = new Uint32Array(size);
    this.enqueued = new Float64Array(size);
    this.kvmCount = new Uint32Array(size);
    this.written = new Uint8Array(Math.ceil(size / ENDS_PER_RANGE));
    for (let i = 0; i < size; i++) this.reset(i);
  }

  /** spapr_xive_end_reset: all zero, ESn and ESe switched off (Q=1). */
  reset(index: number): void {
    this.wrote(index);
    this.w0[index] = 0;
    this.w1[index] = ((PQ.OFF << END_W1_ESN_SHIFT) | (PQ.OFF << END_W1_ESE_SHIFT)) >>> 0;
    this.qaddr[index] = 0;
    this.w6[index] = 0;
    this.w7[index] = 0;
    this.enqueued[index] = 0;
  }

  /**
   * Enables queueing into [qaddr, qaddr + 1<<qshift): VALID + ENQUEUE, the NVT and priority of
   * the (server, priority) pair, generation 1, index 0, ESn/ESe 00 (H_INT_SET_QUEUE_CONFIG,
   * xive.md §2; the KVM EQ_CONFIG set reaches the same END state, §1.4).
   */
  configure(index: number, qaddr: number, qshift: number, alwaysNotify: boolean, server: number): void {
    this.wrote(index);
    this.w0[index] =
      (END_W0_VALID |
        END_W0_ENQUEUE |
        (alwaysNotify ? END_W0_UCOND_NOTIFY : 0) |
        (((qshift - 12) << END_W0_QSIZE_SHIFT) & END_W0_QSIZE)) >>>
      0;
    this.w1[index] = END_W1_GENERATION;
    this.qaddr[index] = qaddr;
    this.w6[index] = (SPAPR_NVT_BASE + server) & END_W6_NVT_INDEX;
    this.w7[index] = ((index & 7) << END_W7_F0_PRIORITY_SHIFT) >>> 0;
    this.enqueued[index] = 0;
  }

  /**
   * Restores the live generation and index (KVM EQ_CONFIG qtoggle/qindex, xive.md §1.4 step 6).
   * The index is kept as OPAL keeps it, masked to the 22-bit PAGE_OFF field and not checked
   * against the queue's size (skiboot hw/xive.c opal_xive_set_queue_state; Linux
   * arch/powerpc/kvm/book3s_xive_native.c kvmppc_xive_native_set_queue_config checks neither):
   * EQ_CONFIG get reads it back as given, and enqueue() wraps it into the queue.
   */
  setQueueState(index: number, generation: number, qindex: number): void {
    this.wrote(index);
    this.w1[index] =
      ((this.w1[index]! & ~(END_W1_GENERATION | END_W1_PAGE_OFF)) |
        ((generation & 1) << END_W1_GENERATION_SHIFT) |
        (qindex & END_W1_PAGE_OFF)) >>>
      0;
  }

  /** What puts END `index`'s words back as they are now (a configuration taken back). */
  snapshot(index: number): () => void {
    const arrays = [this.w0, this.w1, this.qaddr, this.w6, this.w7, this.enqueued];
    const values = arrays.map((words) => words[index]!);
    return () => {
      this.wrote(index);
      arrays.forEach((words, i) => (words[index] = values[i]!));
    };
  }

  private wrote(index: number): void {
    this.written[index >>> RANGE_SHIFT] = 1;
  }

  /** KVM's target selection counts one more source against the queue (xive.md §1.3). */
  countTarget(index: number): void {
    this.wrote(index);
    this.kvmCount[index]!++;
  }

  isValid(index: number): boolean {
    return (this.w0[index]! & END_W0_VALID) !== 0;
  }

  isEnqueue(index: number): boolean {
    return (this.w0[index]! & END_W0_ENQUEUE) !== 0;
  }

  qshiftOf(index: number): number {
    return this.isEnqueue(index) ? ((this.w0[index]! & END_W0_QSIZE) >>> END_W0_QSIZE_SHIFT) + 12 : 0;
  }

  generationOf(index: number): number {
    return (this.w1[index]! & END_W1_GENERATION) >>> END_W1_GENERATION_SHIFT;
  }

  qindexOf(index: number): number {
    return this.w1[index]! & END_W1_PAGE_OFF;
  }

  /**
   * xive_end_enqueue: writes `gen << 31 | data` at qaddr + 4 * qindex, advances qindex and flips
   * the generation when it wraps to 0 (xive.md §4.1 EQ entry). Allocates nothing.
   *
   * An index restored at or past the queue's entry count (KVM and OPAL accept any 22-bit
   * index, see setQueueState) is taken modulo the entry count, the same wrap the index gets on
   * every advance, so the write stays inside the configured queue. QEMU's xive_end_enqueue
   * would write at qaddr + 4 * qindex, past the queue (issue 17 point 2).
   */
  enqueue(index: number, data: number): void {
    const w0 = this.w0[index]!;
    const w1 = this.w1[index]!;
    const generation = (w1 >>> END_W1_GENERATION_SHIFT) & 1;
    const entries = 1 << (((w0 & END_W0_QSIZE) >>> END_W0_QSIZE_SHIFT) + 10);
    const qindex = w1 & END_W1_PAGE_OFF & (entries - 1);
    try {
      this.memory.writeU32BE(
        this.qaddr[index]! + qindex * 4,
        ((generation << 31) | (data & 0x7fff_ffff)) >>> 0,
      );
    } catch {
      // QEMU logs a failed queue write and leaves the END as it was (xive_end_enqueue).
      this.writeFailures++;
      return;
    }
    this.wrote(index);
    const next = (qindex + 1) & (entries - 1);
    const nextGeneration = next === 0 ? generation ^ 1 : generation;
    this.w1[index] =
      ((w1 & ~(END_W1_GENERATION | END_W1_PAGE_OFF)) | (nextGeneration << END_W1_GENERATION_SHIFT) | next) >>>
      0;
    this.enqueued[index]!++;
  }

  /** Reads ESn (notification) or ESe (escalation) PQ of an END. */
  esbOf(index: number, escalation: boolean): number {
    const w1 = this.w1[index]!;
    return escalation ? (w1 & END_W1_ESE) >>> END_W1_ESE_SHIFT : (w1 & END_W1_ESN) >>> END_W1_ESN_SHIFT;
  }

  setEsb(index: number, escalation: boolean, pq: number): void {
    const shift = escalation ? END_W1_ESE_SHIFT : END_W1_ESN_SHIFT;
    this.wrote(index);
    this.w1[index] = ((this.w1[index]! & ~(3 << shift)) | ((pq & 3) << shift)) >>> 0;
  }

  /** Runs the ESn trigger of an END without UCOND_NOTIFY (§4.2 step 7); true if it forwards. */
  triggerEsn(index: number): boolean {
    const result = esbTrigger(this.esbOf(index, false));
    this.setEsb(index, false, result);
    return (result & ESB_FORWARD) !== 0;
  }

  /** EOI on an END ESB (the END source page); returns 1 if Q was set, as the load returns. */
  eoiEsb(index: number, escalation: boolean): number {
    const result = esbEoi(this.esbOf(index, escalation));
    this.setEsb(index, escalation, result);
    return result & ESB_FORWARD ? 1 : 0;
  }

  read(index: number): EndState {
    const w0 = this.w0[index]!;
    return {
      index,
      valid: (w0 & END_W0_VALID) !== 0,
      enqueue: (w0 & END_W0_ENQUEUE) !== 0,
      unconditionalNotify: (w0 & END_W0_UCOND_NOTIFY) !== 0,
      qshift: this.qshiftOf(index),
      qaddr: this.qaddr[index]!,
      qindex: this.qindexOf(index),
      generation: this.generationOf(index),
      esn: this.esbOf(index, false),
      ese: this.esbOf(index, true),
      nvt: this.w6[index]! & END_W6_NVT_INDEX,
      priority: (this.w7[index]! & END_W7_F0_PRIORITY) >>> END_W7_F0_PRIORITY_SHIFT,
      enqueued: this.enqueued[index]!,
    };
  }
}
