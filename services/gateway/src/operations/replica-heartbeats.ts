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
  constructor(
    private readonly store: Store,
    /** A replica whose heartbeat is older than this has stopped. */
    readonly leaseMs: number,
  ) {}

  async beat(instanceId: string, now = Date.now()): Promise<void> {
    const beat: Heartbeat = { instanceId, heartbeatAtMs: now };
    await this.store.put(heartbeatKey(instanceId), { ...beat });
  }

  async remove(instanceId: string): Promise<void> {
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
