import type { SmmuEvent } from "./event-record.js";
import type { UnrecoverableFault } from "./seed-fault-report.js";

/** IOMMU_VEVENTQ_FLAG_LOST_EVENTS (digest §2.5). */
export const VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

/** Sequence numbers run 0..INT_MAX and wrap to 0 (digest §2.5). */
export const SEQUENCE_MASK = 0x7fff_ffff;

/** One entry read from the queue: an event, or the lost-events marker (no payload). */
export type QueuedEvent =
  | {
      sequence: number;
      lost: false;
      event: SmmuEvent;
      seedFault: UnrecoverableFault | undefined;
      forwarded: boolean;
    }
  | { sequence: number; lost: true };

/**
 * The per-instance event queue, with iommufd's vEVENTQ rules (drivers/iommu/iommufd/driver.c,
 * digest §2.5): it holds at most `depth` events; an event reported while it is full is dropped
 * and a LOST_EVENTS header takes the tail instead (one at most, carrying the dropped event's
 * sequence); every report consumes a sequence number, dropped or not, so a reader sees either
 * the marker or a gap; a new event replaces a marker still at the tail. Reading consumes.
 */
export class EventQueue {
  private readonly entries: QueuedEvent[] = [];
  private head = 0;
  private events = 0;
  private nextSequence = 0;
  /** The marker, when it sits at the tail. */
  private lostTail: { sequence: number; lost: true } | undefined;
  reported = 0;
  dropped = 0;

  constructor(
    readonly depth: number,
    /** Sequence of the first report (0 like iommufd; another value lets tests reach the wrap). */
    firstSequence = 0,
  ) {
    if (!Number.isSafeInteger(depth) || depth <= 0)
      throw new RangeError(`event queue depth must be positive, got ${depth}`);
    this.nextSequence = firstSequence & SEQUENCE_MASK;
  }

  /** Events waiting (the marker not counted). */
  get length(): number {
    return this.events;
  }

  /** The sequence the next report will take. */
  get sequence(): number {
    return this.nextSequence;
  }

  /** Reports one event; returns its sequence, or undefined when the queue was full and it was dropped. */
  report(
    event: SmmuEvent,
    seedFault: UnrecoverableFault | undefined,
    forwarded: boolean,
  ): number | undefined {
    this.reported++;
    const sequence = this.nextSequence;
    this.nextSequence = (this.nextSequence + 1) & SEQUENCE_MASK;
    if (this.lostTail) {
      // iommufd_vevent_handler: the marker at the tail is removed before anything is added.
      this.entries.pop();
      this.lostTail = undefined;
    }
    if (this.events === this.depth) {
      this.dropped++;
      this.lostTail = { sequence, lost: true };
      this.entries.push(this.lostTail);
      return undefined;
    }
    this.entries.push({ sequence, lost: false, event, seedFault, forwarded });
    this.events++;
    return sequence;
  }

  /** Reads (and removes) up to `max` entries, oldest first. */
  read(max = Number.MAX_SAFE_INTEGER): QueuedEvent[] {
    const out: QueuedEvent[] = [];
    while (out.length < max && this.head < this.entries.length) {
      const e = this.entries[this.head++]!;
      if (e.lost) this.lostTail = undefined;
      else this.events--;
      out.push(e);
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return out;
  }

  /** Entries waiting, without consuming them. */
  peek(): readonly QueuedEvent[] {
    return this.entries.slice(this.head);
  }

  /** The oldest entry waiting, without consuming it. */
  first(): QueuedEvent | undefined {
    return this.entries[this.head];
  }

  /**
   * How many reports came before the one that took `sequence` (sequences are taken one per
   * report, so the distance back from the next sequence says it; valid for the entries waiting).
   */
  reportIndexOf(sequence: number): number {
    return this.reported - ((this.nextSequence - sequence) & SEQUENCE_MASK);
  }

  /**
   * Puts back a migrated queue (issue 6) in place of what this one held: the entries waiting,
   * oldest first, and the counters. The caller has checked the vEVENTQ rules (decodeSmmuState).
   */
  restore(
    entries: readonly QueuedEvent[],
    counters: { nextSequence: number; reported: number; dropped: number },
  ): void {
    this.entries.length = 0;
    this.head = 0;
    this.events = 0;
    for (const e of entries) {
      this.entries.push(e);
      if (!e.lost) this.events++;
    }
    const last = entries.at(-1);
    this.lostTail = last?.lost ? last : undefined;
    this.nextSequence = counters.nextSequence & SEQUENCE_MASK;
    this.reported = counters.reported;
    this.dropped = counters.dropped;
  }
}
