/** Where a wanted sequence is in a SequencedRing. */
export type RingPlace =
  | { held: true; slot: number }
  /** No longer held: `oldest` is the first sequence still there. */
  | { held: false; oldest: number };

/**
 * The bookkeeping of a stream log that watchers resume by sequence: messages numbered from
 * `first`, the last `capacity` kept in ring slots (the caller stores them, in whatever arrays
 * suit it), and the watchers waiting for the next one. It allocates nothing per message while
 * no watcher waits, so it can sit on an interrupt's hot path.
 *
 * Hand-written: the logs store their messages in typed arrays or objects of their own and need
 * only this arithmetic and a wake-up, which no queue library offers without its own storage.
 */
export class SequencedRing {
  /** Sequence the next message takes. */
  private nextSeq: number;
  private waiters: (() => void)[] = [];

  constructor(
    readonly capacity: number,
    private readonly first = 0,
  ) {
    this.nextSeq = first;
  }

  /** Sequence the next message takes. */
  get next(): number {
    return this.nextSeq;
  }

  /** The oldest sequence still held (the first one, until the ring wraps). */
  get oldest(): number {
    return Math.max(this.first, this.nextSeq - this.capacity);
  }

  /** Takes the next sequence: the slot to store its message in. Wakes the watchers. */
  append(): number {
    const slot = (this.nextSeq - this.first) % this.capacity;
    this.nextSeq++;
    if (this.waiters.length > 0) this.wake();
    return slot;
  }

  /** Where `sequence` is: its slot, no longer held, or undefined if it has not happened yet. */
  place(sequence: number): RingPlace | undefined {
    if (sequence >= this.nextSeq) return undefined;
    const oldest = this.oldest;
    if (sequence < oldest) return { held: false, oldest };
    return { held: true, slot: (sequence - this.first) % this.capacity };
  }

  /** Resolves at the next append, or when `signal` aborts or the ring closes. */
  waitForNext(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Wakes every watcher (the log's device is going away). */
  close(): void {
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
