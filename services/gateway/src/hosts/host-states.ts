import type { HostRegistry, HostUsage } from "../registry/host-registry.js";
import type { Versioned } from "../registry/typed-entry.js";
import type { HostAvailability, HostRecord } from "../schemas/host-schema.js";
import { hostAvailability } from "./host-availability.js";
import type { HostHealthMonitor } from "./host-health.js";
import type { HostLease, HostLeases } from "./host-leases.js";

/** A host as placement sees it: its record, its usage at a revision, whether it takes VMs now. */
export interface HostState {
  host: HostRecord;
  usage: Versioned<HostUsage>;
  availability: HostAvailability;
  lease?: HostLease;
}

/** Hosts with their usage, lease and health put together, for placement and the host routes. */
export class HostStates {
  constructor(
    private readonly hosts: HostRegistry,
    private readonly leases: HostLeases,
    private readonly health: HostHealthMonitor,
  ) {}

  /** Every registered host's state (usage read now: its revision guards the placement write). */
  async all(): Promise<HostState[]> {
    const [records, leases] = await Promise.all([this.hosts.list(), this.leases.all()]);
    return Promise.all(records.map((host) => this.stateOf(host, leases.get(host.name))));
  }

  async of(host: HostRecord): Promise<HostState> {
    return this.stateOf(host, await this.leases.get(host.name));
  }

  private async stateOf(host: HostRecord, lease: HostLease | undefined): Promise<HostState> {
    const [usage, health] = await Promise.all([this.hosts.usageOf(host.name), this.health.of(host)]);
    return { host, usage, availability: hostAvailability(host, lease, health), ...(lease ? { lease } : {}) };
  }
}
