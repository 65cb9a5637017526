import type { Store } from "@vplane/store";
import { registryKeys } from "../registry/registry-keys.js";
import { listAll, putOp, readRecord } from "../registry/typed-entry.js";

/**
 * A joined host's lease in the registry: renewed by each heartbeat of its agent through any
 * gateway replica; a host whose lease lapsed gets no new VMs (hostAvailability). The time is the
 * renewing replica's clock, compared with the reading replica's (replicas' clocks are assumed
 * synchronised well within a lease, as for the replicas' own heartbeats).
 */
export interface HostLease {
  host: string;
  renewedAtMs: number;
  /** How long the lease holds after renewedAtMs without another heartbeat. */
  ttlMs: number;
  /** The agent's version string, as it reported it. */
  agentVersion: string;
}

export class HostLeases {
  constructor(private readonly store: Store) {}

  /** A renewed lease (its time is now) and the write that stores it, for the join's transaction. */
  renewal(host: string, ttlMs: number, agentVersion: string, now = Date.now()) {
    const lease: HostLease = { host, renewedAtMs: now, ttlMs, agentVersion };
    return { lease, op: putOp(registryKeys.hostLease(host), lease) };
  }

  async get(host: string): Promise<HostLease | undefined> {
    return (await readRecord<HostLease>(this.store, registryKeys.hostLease(host)))?.value;
  }

  /** Every host's lease, by host name. */
  async all(): Promise<Map<string, HostLease>> {
    const leases = await listAll<HostLease>(this.store, registryKeys.hostLeases());
    return new Map(leases.map(({ value }) => [value.host, value]));
  }
}

/** Whether `lease` still holds at `now`. */
export function leaseHolds(lease: HostLease, now = Date.now()): boolean {
  return now - lease.renewedAtMs < lease.ttlMs;
}
