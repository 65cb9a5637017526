import type { Store } from "@vplane/store";
import { readRecord } from "../registry/typed-entry.js";

/** A replica's heartbeat in the registry (gateways/{instanceId}). */
interface Heartbeat {
  instanceId: string;
  heartbeatAtMs: number;
}

const heartbeatKey = (instanceId: string) => `gateways/${instanceId}`;

/**
 * Gateway replicas' heartbeats: each running replica refreshes its own (OperationRecovery does,
 * every heartbeat interval); a replica whose heartbeat is older than the lease, or that has none
 * (it stopped gracefully), has stopped. The one rule every replica judges another by: for its
 * unfinished operations (OperationRecovery) and for the Idempotency-Keys it held (idempotency).
 */
export class ReplicaHeartbeats {
  /** When this process last stored a heartbeat (ms since the epoch); 0: never. */
  private ownBeatAtMs = 0;

  constructor(
    private readonly store: Store,
    /** A replica whose heartbeat is older than this has stopped. */
    readonly leaseMs: number,
  ) {}

  async beat(instanceId: string, now = Date.now()): Promise<void> {
    const beat: Heartbeat = { instanceId, heartbeatAtMs: now };
    await this.store.put(heartbeatKey(instanceId), { ...beat });
    this.ownBeatAtMs = now;
  }

  /**
   * Whether this replica's own heartbeat is surely current: stored less than half a lease ago
   * (the other half covers clocks that differ), so no other replica takes its operations over.
   */
  ownIsCurrent(now = Date.now()): boolean {
    return now - this.ownBeatAtMs < this.leaseMs / 2;
  }

  async remove(instanceId: string): Promise<void> {
    this.ownBeatAtMs = 0;
    await this.store.delete(heartbeatKey(instanceId));
  }

  /** When the replica counts as stopped unless it beats again (ms since the epoch); 0 if it has. */
  async lapsesAt(instanceId: string): Promise<number> {
    const beat = await readRecord<Heartbeat>(this.store, heartbeatKey(instanceId));
    return beat ? beat.value.heartbeatAtMs + this.leaseMs : 0;
  }

  async isAlive(instanceId: string, now = Date.now()): Promise<boolean> {
    return (await this.lapsesAt(instanceId)) > now;
  }
}
