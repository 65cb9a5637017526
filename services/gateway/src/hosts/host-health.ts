import type { HealthAnswer } from "@vplane/service-kit";
import type { HostConnections } from "./host-clients.js";
import type { HostAddresses, HostRecord } from "../schemas/host-schema.js";

/** What a host's three services answered to grpc.health.v1 at `checkedAtMs`. */
export interface HostHealth {
  services: { interruptController: HealthAnswer; iommu: HealthAnswer; migration: HealthAnswer };
  checkedAtMs: number;
}

const NEGATIVE_ANSWER_MS = 250;

/** True when every service of the host answered SERVING. */
export function allServing(health: HostHealth): boolean {
  return Object.values(health.services).every((answer) => answer === "SERVING");
}

/**
 * This replica's view of its hosts' health, for placement: each registered host's services are
 * asked (grpc.health.v1, short deadline) every `intervalMs` in the background, so placing a VM
 * reads the last answers instead of waiting for three probes per host. A host never probed yet is
 * probed on the spot, and so is one whose last answers are stale: healthy answers older than three
 * intervals (the probe loop stalled), unhealthy ones older than NEGATIVE_ANSWER_MS (a service
 * that came back takes VMs at once; a refused connection answers in microseconds).
 */
export class HostHealthMonitor {
  private readonly known = new Map<string, HostHealth>();
  private readonly probing = new Map<string, Promise<HostHealth>>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  constructor(
    private readonly connections: HostConnections,
    private readonly listHosts: () => Promise<HostRecord[]>,
    private readonly intervalMs: number,
    /** Deadline of one health check; long enough for a busy host, which is still a healthy one. */
    private readonly probeTimeoutMs = 2_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.round ??= this.probeAll()
        .catch(() => undefined) // the registry did not answer: keep the last answers, try again
        .finally(() => (this.round = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.round;
  }

  /** The last answers of `host`'s services, probing now when there are none recent enough. */
  async of(host: HostRecord, now = Date.now()): Promise<HostHealth> {
    const known = this.known.get(addressKey(host.addresses));
    const trustedMs = known && allServing(known) ? 3 * this.intervalMs : NEGATIVE_ANSWER_MS;
    if (known && now - known.checkedAtMs <= trustedMs) return known;
    return this.probe(host);
  }

  private async probeAll(): Promise<void> {
    const hosts = await this.listHosts();
    const current = new Set(hosts.map((host) => addressKey(host.addresses)));
    for (const key of this.known.keys()) if (!current.has(key)) this.known.delete(key);
    await Promise.all(hosts.map((host) => this.probe(host)));
  }

  /** Probes `host`, or joins the probe of it already under way (placements arrive in bursts). */
  private probe(host: HostRecord): Promise<HostHealth> {
    const key = addressKey(host.addresses);
    let probing = this.probing.get(key);
    if (!probing) {
      probing = this.probeNow(host).finally(() => this.probing.delete(key));
      this.probing.set(key, probing);
    }
    return probing;
  }

  private async probeNow(host: HostRecord): Promise<HostHealth> {
    const { interruptController, iommu, migration } = host.addresses;
    const [a, b, c] = await Promise.all(
      [interruptController, iommu, migration].map((address) =>
        this.connections.healthOf(address, this.probeTimeoutMs),
      ),
    );
    const health: HostHealth = {
      services: { interruptController: a!, iommu: b!, migration: c! },
      checkedAtMs: Date.now(),
    };
    this.known.set(addressKey(host.addresses), health);
    return health;
  }
}

const addressKey = (addresses: HostAddresses) =>
  `${addresses.interruptController}|${addresses.iommu}|${addresses.migration}`;
