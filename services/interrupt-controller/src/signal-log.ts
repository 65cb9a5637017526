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
  private readonly servers: Uint32Array;
  private readonly raised: Uint8Array;
  private readonly times: Float64Array;
  /** Sequence of the last event recorded (0: none yet). */
  private last = 0;
  private waiters: (() => void)[] = [];

  constructor(readonly capacity: number) {
    this.servers = new Uint32Array(capacity);
    this.raised = new Uint8Array(capacity);
    this.times = new Float64Array(capacity);
  }

  get lastSequence(): number {
    return this.last;
  }

  /** The oldest sequence still held. */
  get oldestSequence(): number {
    return Math.max(1, this.last - this.capacity + 1);
  }

  record(server: number, raised: boolean): void {
    const slot = this.last % this.capacity;
    this.servers[slot] = server;
    this.raised[slot] = raised ? 1 : 0;
    this.times[slot] = Date.now();
    this.last++;
    if (this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * What a watcher whose next wanted sequence is `next` reads: the event, a dropped marker if
   * `next` is no longer held, or undefined if it has not happened yet.
   */
  read(next: number): SignalRecord | undefined {
    if (next > this.last) return undefined;
    const oldest = this.oldestSequence;
    if (next < oldest) return { kind: "dropped", sequence: BigInt(oldest), count: BigInt(oldest - next) };
    const slot = (next - 1) % this.capacity;
    return {
      kind: "signal",
      sequence: BigInt(next),
      server: this.servers[slot]!,
      raised: this.raised[slot] === 1,
      timeMs: this.times[slot]!,
    };
  }

  /** Resolves at the next recorded event or when `signal` aborts. */
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

  /** Wakes every waiter (the controller is being deleted). */
  close(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
