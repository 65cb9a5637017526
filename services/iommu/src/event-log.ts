import type { QueuedEvent, PageRequest } from "@vplane/smmuv3";
import { SequencedRing } from "@vplane/service-kit";

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
  private readonly ring: SequencedRing;
  private readonly messages: (LoggedEvent | undefined)[];
  subscribers = 0;
  /** Sees every message as it is appended (the service counts them in its metrics). */
  onAppend: ((message: LoggedEvent) => void) | undefined;

  /**
   * @param firstSequence the sequence of the first message: 0, or for an SMMU migrated here the
   * number of messages its source already streamed, so subscribers resume where they left off
   * (messages before it count as missed).
   */
  constructor(
    readonly capacity: number,
    firstSequence = 0n,
  ) {
    this.ring = new SequencedRing(capacity, Number(firstSequence));
    this.messages = new Array<LoggedEvent | undefined>(capacity);
  }

  /** Sequence the next message will take. */
  get nextSequence(): bigint {
    return BigInt(this.ring.next);
  }

  /** The oldest message still held. */
  get oldestSequence(): bigint {
    return BigInt(this.ring.oldest);
  }

  appendEvent(queued: QueuedEvent): void {
    const sequence = this.nextSequence;
    if (queued.lost) this.push({ kind: "queue-overflow", sequence });
    else this.push({ kind: "event", sequence, queued });
  }

  appendPageRequest(request: PageRequest): void {
    this.push({ kind: "page-request", sequence: this.nextSequence, request });
  }

  /** What the subscriber whose next wanted sequence is `at` reads, or undefined if it is not there yet. */
  read(at: bigint): LogRead | undefined {
    const place = this.ring.place(Number(at));
    if (!place) return undefined;
    if (!place.held) return { kind: "missed", sequence: at, count: BigInt(place.oldest) - at };
    return this.messages[place.slot];
  }

  /** Resolves at the next append, or when `signal` aborts or the log closes. */
  waitForNext(signal: AbortSignal): Promise<void> {
    return this.ring.waitForNext(signal);
  }

  close(): void {
    this.ring.close();
  }

  private push(message: LoggedEvent): void {
    // The watchers append() wakes resume in a later microtask, after the store below.
    this.messages[this.ring.append()] = message;
    this.onAppend?.(message);
  }
}
