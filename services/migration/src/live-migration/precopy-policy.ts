// When the device pre-copy of a live migration stops iterating (issue 14), as QEMU decides for
// RAM (migration_iteration_run: stop once what is left would move within the downtime limit),
// with the device delta counted: the expected downtime is the stop's fixed cost (its round
// trips, measured on the iterations' acknowledgements) plus the bytes the devices report still
// to send at the rate the iterations moved them. Iterating stops when nothing is left, or when
// the expected downtime fits the limit and another iteration would not shrink what is left (a
// guest that keeps reconfiguring leaves a steady trickle). A migration whose remaining device
// state reaches no new low for the no-progress timeout fails with a reason: it never loops.
import { VplaneError } from "@vplane/service-kit";

/** What one pre-copy iteration measured. */
export interface IterationMeasure {
  /** Chunk bytes the iteration moved. */
  bytes: number;
  /** From the first read to the destination's acknowledgement, ms. */
  durationMs: number;
  /** From the iteration's end marker to the acknowledgement: the round trip plus the last apply, ms. */
  acknowledgeMs: number;
  /** What the devices report still to send afterwards (initial + dirty bytes). */
  remainingBytes: number;
  /** When it ended (performance.now()), ms. */
  at: number;
}

export type PreCopyStep = { t: "iterate" } | { t: "stop"; expectedDowntimeMs: number };

export class PreCopyPolicy {
  private best = Number.POSITIVE_INFINITY;
  private bestAt: number;
  private previous = Number.POSITIVE_INFINITY;
  private fixedMs = Number.POSITIVE_INFINITY;
  private bytesPerMs = 0;
  private iterations = 0;

  /**
   * @param downtimeLimitMs the migration's downtime limit (0: none).
   * @param noProgressMs how long the remaining device state may go without a new low.
   * @param startedAt performance.now() when pre-copy started.
   */
  constructor(
    private readonly downtimeLimitMs: number,
    private readonly noProgressMs: number,
    startedAt: number,
  ) {
    this.bestAt = startedAt;
  }

  /** The stop's expected duration if it had to move `bytes` now, ms. */
  expectedDowntimeMs(bytes: number): number {
    const transfer =
      bytes === 0 ? 0 : this.bytesPerMs > 0 ? bytes / this.bytesPerMs : Number.POSITIVE_INFINITY;
    return (Number.isFinite(this.fixedMs) ? this.fixedMs : 0) + transfer;
  }

  /** After an iteration: iterate again or stop; throws when pre-copy does not converge. */
  next(measure: IterationMeasure): PreCopyStep {
    this.iterations++;
    // The stop takes about two of these round trips (StopAndCopy, then FinishImport with the ack).
    this.fixedMs = Math.min(this.fixedMs, 2 * measure.acknowledgeMs);
    if (measure.bytes > 0 && measure.durationMs > 0)
      this.bytesPerMs = Math.max(this.bytesPerMs, measure.bytes / measure.durationMs);
    const remaining = measure.remainingBytes;
    const expected = this.expectedDowntimeMs(remaining);
    const shrinking = remaining < this.previous;
    this.previous = remaining;
    if (remaining < this.best) {
      this.best = remaining;
      this.bestAt = measure.at;
    }
    const fits = this.downtimeLimitMs === 0 || expected <= this.downtimeLimitMs;
    if (remaining === 0 || (fits && !shrinking)) return { t: "stop", expectedDowntimeMs: expected };
    if (measure.at - this.bestAt >= this.noProgressMs) {
      throw new VplaneError({
        code: "DEADLINE_EXCEEDED",
        reason: "PRECOPY_NOT_CONVERGING",
        message:
          `device state still has ${remaining} bytes to move after ${this.iterations} pre-copy iterations ` +
          `(expected downtime ${expected.toFixed(1)} ms, limit ${this.downtimeLimitMs} ms): the guest changes ` +
          `it faster than it moves, with no new low for ${this.noProgressMs} ms`,
      });
    }
    return { t: "iterate" };
  }
}
