import type { Counter, Histogram, ServiceMetrics } from "./service-metrics.js";

/** Backlog buckets in messages, up to the streams' 4096-message buffers. */
const BACKLOG_BUCKETS = [0, 1, 4, 16, 64, 256, 1024, 4096];

/**
 * The health of a resumable event stream (a sequence-numbered buffer that subscribers follow):
 * how far behind its subscribers read, and how many messages they lost to the buffer's wrap
 * (the `dropped`/`missed` markers the streams send).
 */
export class EventStreamMetrics {
  private readonly lag: Histogram;
  private readonly lostEvents: Counter;

  /** `prefix` names the stream, e.g. "vplane_interrupt_signal_stream". */
  constructor(metrics: ServiceMetrics, prefix: string, what: string) {
    this.lag = metrics.histogram({
      name: `${prefix}_lag_events`,
      help: `${what} recorded but not yet sent to a subscriber, observed after each send`,
      buckets: BACKLOG_BUCKETS,
    });
    this.lostEvents = metrics.counter({
      name: `${prefix}_lost_events_total`,
      help: `${what} subscribers could no longer read (the buffer wrapped), as the streams' lost markers say`,
    });
  }

  /** After a send: `backlog` messages were still waiting for this subscriber. */
  sent(backlog: number): void {
    this.lag.observe(backlog);
  }

  /** A lost marker went out, saying `count` messages are gone. */
  lost(count: number): void {
    this.lostEvents.inc(count);
  }
}
