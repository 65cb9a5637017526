import type { GuestMemory } from "@vplane/guest-memory";
import type { EndState } from "./end-table.js";

/** One entry a reader took from a queue. */
export interface QueueEntry {
  /** The 31-bit data (the EISN of the source). */
  data: number;
  /** The generation bit the entry was written with. */
  generation: number;
}

/**
 * The guest's side of an event queue (Linux's __xive_read_eq, xive.md §4.1): an entry is valid
 * while its top bit differs from the reader's toggle; the toggle starts at 0 (the producer's
 * generation starts at 1) and flips when the index wraps. The hardware has no notion of a
 * full queue and overwrites; this reader makes an overflow visible by comparing what the END
 * wrote with what it read (`lost`).
 */
export class EventQueueReader {
  private index = 0;
  private toggle = 0;
  private taken = 0;
  /** Entries the producer overwrote before this reader got to them. */
  lost = 0;

  constructor(
    private readonly memory: GuestMemory,
    readonly qaddr: number,
    readonly qshift: number,
    start: { index: number; toggle: number } = { index: 0, toggle: 0 },
  ) {
    this.index = start.index;
    this.toggle = start.toggle;
  }

  get entries(): number {
    return 1 << (this.qshift - 2);
  }

  /** Reads the next valid entry, or undefined when the queue is empty. */
  next(): QueueEntry | undefined {
    const word = this.memory.readU32BE(this.qaddr + this.index * 4);
    const generation = word >>> 31;
    if (generation === this.toggle) return undefined;
    this.index = (this.index + 1) & (this.entries - 1);
    if (this.index === 0) this.toggle ^= 1;
    this.taken++;
    return { data: word & 0x7fff_ffff, generation };
  }

  /** Reads every valid entry. */
  drain(): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (let e = this.next(); e !== undefined; e = this.next()) out.push(e);
    return out;
  }

  /**
   * Compares with the END's count of entries written: more than a queue's worth unread means
   * the producer lapped this reader; `lost` becomes the number overwritten. Returns it.
   */
  checkOverflow(end: Pick<EndState, "enqueued">): number {
    const unread = end.enqueued - this.taken - this.lost;
    if (unread > this.entries) this.lost += unread - this.entries;
    return this.lost;
  }
}
