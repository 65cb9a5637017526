import { connectivityState, type ChannelInterface as Channel } from "@grpc/grpc-js";
import type { Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";

/** How long an answer is kept while its connection stays up (a proxy may hide a restart). */
export const CAPABILITIES_MAX_AGE_MS = 60_000;

interface Entry {
  answer: Promise<Capabilities | undefined>;
  atMs: number;
}

/**
 * What a host service answered to GetCapabilities, kept per gRPC channel while the connection
 * that carried the answer stays up. A service works its capabilities out once, when it starts
 * (backends probed, limits read from its configuration), so they change only with a new process,
 * and a new process means a new connection: the channel leaving READY drops the answer, and the
 * next create asks again. Behind a proxy that keeps the gateway's connection while the service
 * behind it restarts, an answer is kept at most CAPABILITIES_MAX_AGE_MS. A failed call is not kept.
 * Saves a round trip to the host (and its CPU on both sides) on every create.
 */
export class CapabilitiesCache {
  private readonly entries = new Map<Channel, Entry>();
  private readonly watched = new WeakSet<Channel>();

  constructor(
    private readonly maxAgeMs = CAPABILITIES_MAX_AGE_MS,
    private readonly now = () => Date.now(),
  ) {}

  /** The answer kept for `channel`, or `ask()`'s (concurrent callers share one call). */
  get(channel: Channel, ask: () => Promise<Capabilities | undefined>): Promise<Capabilities | undefined> {
    const known = this.entries.get(channel);
    if (known && this.now() - known.atMs < this.maxAgeMs) return known.answer;
    const entry: Entry = { answer: ask(), atMs: this.now() };
    this.entries.set(channel, entry);
    entry.answer.then(
      () => this.keepWhileConnected(channel, entry),
      () => this.drop(channel, entry),
    );
    return entry.answer;
  }

  /**
   * Keeps `entry` until the channel leaves READY. Checked once the answer is in: a connection that
   * broke after carrying it is no longer READY (grpc-js reconnects only for a new call, and no
   * reconnect completes between an answer and its continuation).
   */
  private keepWhileConnected(channel: Channel, entry: Entry): void {
    if (channel.getConnectivityState(false) !== connectivityState.READY) {
      this.drop(channel, entry);
      return;
    }
    if (this.watched.has(channel)) return;
    this.watched.add(channel);
    channel.watchConnectivityState(connectivityState.READY, Infinity, () => {
      this.watched.delete(channel);
      this.entries.delete(channel);
    });
  }

  private drop(channel: Channel, entry: Entry): void {
    if (this.entries.get(channel) === entry) this.entries.delete(channel);
  }
}
