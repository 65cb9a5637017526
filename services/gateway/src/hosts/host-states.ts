import { listAll, type Store } from "@vplane/store";
import { registryKeys } from "../registry/registry-keys.js";
import { NO_USAGE, type HostRegistry, type HostUsage } from "../registry/host-registry.js";
import type { Versioned } from "../registry/typed-entry.js";
import { withSmmusCounted } from "../registry/host-usage.js";
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
    private readonly store: Store,
    private readonly hosts: HostRegistry,
    private readonly leases: HostLeases,
    private readonly health: HostHealthMonitor,
  ) {}

  /**
   * Every registered host's state (usage read now: its revision guards the placement write).
   * Records, usages and leases share a key prefix: one read whatever the number of hosts (a
   * placement that lost a race reads again, so this read is paid per try).
   */
  async all(): Promise<HostState[]> {
    const records: HostRecord[] = [];
    const usages = new Map<string, Versioned<HostUsage>>();
    const leases = new Map<string, HostLease>();
    const [recordsPrefix, usagesPrefix, leasesPrefix] = [
      registryKeys.hosts(),
      registryKeys.hostUsages(),
      registryKeys.hostLeases(),
    ];
    for (const { key, value, revision } of await listAll(this.store, registryKeys.hostsUsagesAndLeases())) {
      if (key.startsWith(recordsPrefix)) records.push(value as unknown as HostRecord);
      else if (key.startsWith(usagesPrefix))
        usages.set(key.slice(usagesPrefix.length), { value: value as unknown as HostUsage, revision });
      else if (key.startsWith(leasesPrefix))
        leases.set(key.slice(leasesPrefix.length), value as unknown as HostLease);
    }
    const whole = await withSmmusCounted(this.store, usages);
    return Promise.all(
      records.map((host) =>
        this.stateOf(host, leases.get(host.name), whole.get(host.name) ?? { value: NO_USAGE, revision: 0 }),
      ),
    );
  }

  async of(host: HostRecord): Promise<HostState> {
    const [lease, usage] = await Promise.all([this.leases.get(host.name), this.hosts.usageOf(host.name)]);
    return this.stateOf(host, lease, usage);
  }

  /** A host's state from its record, lease and usage as given, with its health as probed now. */
  async stateOf(
    host: HostRecord,
    lease: HostLease | undefined,
    usage: Versioned<HostUsage>,
  ): Promise<HostState> {
    const health = await this.health.of(host);
    return { host, usage, availability: hostAvailability(host, lease, health), ...(lease ? { lease } : {}) };
  }
}
