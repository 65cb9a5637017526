import { SequencedRing } from "@vplane/service-kit";

/** One event of a controller's signal log, or a marker that events were dropped. */
export type SignalRecord =
  | { kind: "signal"; sequence: bigint; server: number; raised: boolean; timeMs: number }
  | { kind: "dropped"; sequence: bigint; count: bigint };

/**
 * The vCPU exception-line changes of one controller: sequence-numbered from 1, the last
 * `capacity` kept in a ring so a watcher can resume after a sequence it saw. Recording is on the
 * interrupt hot path and allocates nothing unless a watcher is waiting.
 */
export class SignalLog {
  private readonly ring: SequencedRing;
  private readonly servers: Uint32Array;
  private readonly raised: Uint8Array;
  private readonly times: Float64Array;

  constructor(readonly capacity: number) {
    this.ring = new SequencedRing(capacity, 1);
    this.servers = new Uint32Array(capacity);
    this.raised = new Uint8Array(capacity);
    this.times = new Float64Array(capacity);
  }

  /** Sequence of the last event recorded (0: none yet). */
  get lastSequence(): number {
    return this.ring.next - 1;
  }

  /** The oldest sequence still held. */
  get oldestSequence(): number {
    return this.ring.oldest;
  }

  record(server: number, raised: boolean): void {
    // The watchers append() wakes resume in a later microtask, after the stores below.
    const slot = this.ring.append();
    this.servers[slot] = server;
    this.raised[slot] = raised ? 1 : 0;
    this.times[slot] = Date.now();
  }

  /**
   * What a watcher whose next wanted sequence is `next` reads: the event, a dropped marker if
   * `next` is no longer held, or undefined if it has not happened yet.
   */
  read(next: number): SignalRecord | undefined {
    const place = this.ring.place(next);
    if (!place) return undefined;
    if (!place.held)
      return { kind: "dropped", sequence: BigInt(place.oldest), count: BigInt(place.oldest - next) };
    return {
      kind: "signal",
      sequence: BigInt(next),
      server: this.servers[place.slot]!,
      raised: this.raised[place.slot] === 1,
      timeMs: this.times[place.slot]!,
    };
  }

  /** Resolves at the next recorded event or when `signal` aborts. */
  waitForNext(signal: AbortSignal): Promise<void> {
    return this.ring.waitForNext(signal);
  }

  /** Wakes every waiter (the controller is being deleted). */
  close(): void {
    this.ring.close();
  }
}
