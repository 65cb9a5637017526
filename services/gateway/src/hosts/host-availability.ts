import { allServing, type HostHealth } from "./host-health.js";
import { leaseHolds, type HostLease } from "./host-leases.js";
import type { HostAvailability, HostRecord } from "../schemas/host-schema.js";

const SERVICE_NAMES = { interruptController: "interrupt-controller", iommu: "iommu", migration: "migration" };

/**
 * Whether placement may give `host` a new VM: a host that joined by itself must hold a lease
 * (its agent heartbeats), and every host's three services must answer SERVING. Hosts an admin
 * registered have no lease; their health alone decides.
 */
export function hostAvailability(
  host: HostRecord,
  lease: HostLease | undefined,
  health: HostHealth,
  now = Date.now(),
): HostAvailability {
  if (host.source === "agent" && (!lease || !leaseHolds(lease, now))) {
    const since = lease
      ? `for ${Math.round((now - lease.renewedAtMs) / 1000)} s (lease ${lease.ttlMs} ms)`
      : "yet";
    return {
      state: "UNAVAILABLE",
      reason: "LEASE_EXPIRED",
      message: `host '${host.name}' has not renewed its lease ${since}`,
    };
  }
  if (!allServing(health)) {
    const failing = Object.entries(health.services)
      .filter(([, answer]) => answer !== "SERVING")
      .map(([service, answer]) => `${SERVICE_NAMES[service as keyof typeof SERVICE_NAMES]} ${answer}`);
    return {
      state: "UNAVAILABLE",
      reason: "SERVICES_NOT_SERVING",
      message: `host '${host.name}': ${failing.join(", ")}`,
    };
  }
  return { state: "AVAILABLE" };
}
