import type { QueuedEvent, PageRequest } from "@vplane/smmuv3";

/** One message of an SMMU's event stream. */
export type LoggedEvent =
  | { kind: "event"; sequence: bigint; queued: Extract<QueuedEvent, { lost: false }> }
  | { kind: "page-request"; sequence: bigint; request: PageRequest }
  /** The SMMU's own queue overflowed (iommufd's LOST_EVENTS header). */
  | { kind: "queue-overflow"; sequence: bigint };

/** What a subscriber reads next: a message, or how many it can no longer get. */
export type LogRead = LoggedEvent | { kind: "missed"; sequence: bigint; count: bigint };

/**
 * An SMMU's stream messages, sequence-numbered from 0 and kept in a ring of `capacity` so that
 * several subscribers can each resume from the sequence they last saw. A subscriber that falls
 * more than `capacity` behind reads a "missed" marker with the count, then goes on.
 */
export class EventLog {
  private readonly ring: (LoggedEvent | undefined)[];
  private next: bigint;
  private waiters: (() => void)[] = [];
  subscribers = 0;
  /** Sees every message as it is appended (the service counts them in its metrics). */
  onAppend: ((message: LoggedEvent) => void) | undefined;

  /**
   * @param firstSequence the sequence of the first message: 0, or for an SMMU migrated here the
   * number of messages its source already streamed, so subscribers resume where they left off.
   */
  constructor(
    readonly capacity: number,
    private readonly firstSequence = 0n,
  ) {
    this.ring = new Array<LoggedEvent | undefined>(capacity);
    this.next = firstSequence;
  }

  /** Sequence the next message will take. */
  get nextSequence(): bigint {
    return this.next;
  }

  /** The oldest message still held (messages before the first one here count as missed). */
  get oldestSequence(): bigint {
    const held = BigInt(this.capacity);
    const ringStart = this.next > held ? this.next - held : 0n;
    return ringStart > this.firstSequence ? ringStart : this.firstSequence;
  }

  appendEvent(queued: QueuedEvent): void {
    if (queued.lost) this.push({ kind: "queue-overflow", sequence: this.next });
    else this.push({ kind: "event", sequence: this.next, queued });
  }

  appendPageRequest(request: PageRequest): void {
    this.push({ kind: "page-request", sequence: this.next, request });
  }

  /** What the subscriber whose next wanted sequence is `at` reads, or undefined if it is not there yet. */
  read(at: bigint): LogRead | undefined {
    if (at >= this.next) return undefined;
    const oldest = this.oldestSequence;
    if (at < oldest) return { kind: "missed", sequence: at, count: oldest - at };
    return this.ring[Number(at % BigInt(this.capacity))];
  }

  /** Resolves at the next append, or when `signal` aborts or the log closes. */
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

  close(): void {
    this.wake();
  }

  private push(e: LoggedEvent): void {
    this.ring[Number(this.next % BigInt(this.capacity))] = e;
    this.next++;
    this.onAppend?.(e);
    if (this.waiters.length > 0) this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
