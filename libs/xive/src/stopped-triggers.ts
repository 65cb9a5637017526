/**
 * The triggers that reached a quiesced controller, in arrival order, so that resume can replay
 * them exactly as they would have played out had the controller been running (xive.md §6:
 * "re-trigger a source that was hit while stopped").
 *
 * Nothing the guest can do runs while the controller is stopped, so each source's state only
 * moves under its own triggers and the log can be bounded per source:
 * - an MSI saturates after two triggers (XIVE PQ 00 → 10 → 11, and an XICS MSI is presented or
 *   rejected by the first and rejected by the second, the ICP's pending priority only improving
 *   while stopped);
 * - for an LSI only the first assertion can forward (XIVE: from PQ 00 only, and Q is never set;
 *   XICS: the first send either sticks or is rejected for good); its level is kept as it goes.
 */
export class StoppedTriggers {
  /** Source numbers in the order their triggers arrived, at most `limitOf` per source. */
  readonly order: number[] = [];
  private readonly counts = new Map<number, number>();

  /** Records a trigger of `irq` unless the source already has `limit` recorded. */
  record(irq: number, limit: number): void {
    const count = this.counts.get(irq) ?? 0;
    if (count >= limit) return;
    this.counts.set(irq, count + 1);
    this.order.push(irq);
  }

  countOf(irq: number): number {
    return this.counts.get(irq) ?? 0;
  }

  /** A log restored from an exported state (already validated against the limits). */
  static from(order: readonly number[]): StoppedTriggers {
    const log = new StoppedTriggers();
    for (const irq of order) log.record(irq, Number.MAX_SAFE_INTEGER);
    return log;
  }
}

/** How many triggers of one source matter while stopped (see StoppedTriggers). */
export function stoppedTriggerLimit(lsi: boolean): number {
  return lsi ? 1 : 2;
}
