import { VplaneError } from "@vplane/service-kit";
import type { HostUsage } from "../registry/host-registry.js";
import type { HostAvailability, HostRecord } from "../schemas/host-schema.js";

export interface PlacementCandidate {
  host: HostRecord;
  usage: HostUsage;
  /** Unset: available (callers that know no health, e.g. tests of the ranking). */
  availability?: HostAvailability;
}

const isAvailable = (candidate: PlacementCandidate) => candidate.availability?.state !== "UNAVAILABLE";

/** What one more VM takes of a host (a VM spec or a VM record). */
export interface Demand {
  vcpus: number;
  memoryBytes: number;
  iommu?: { smmus?: readonly unknown[] };
}

/**
 * Whether `demand` (one more VM: its controller, its SMMUs) fits what is left on the host; a
 * capacity of 0 or unset means no limit.
 */
export function fits(candidate: PlacementCandidate, demand: Demand): boolean {
  const { capacity } = candidate.host;
  const vcpusOk = capacity.vcpus === 0 || candidate.usage.vcpus + demand.vcpus <= capacity.vcpus;
  const memoryOk =
    capacity.memoryBytes === 0 || candidate.usage.memoryBytes + demand.memoryBytes <= capacity.memoryBytes;
  const vmsOk = !capacity.vms || candidate.usage.vms + 1 <= capacity.vms;
  const smmus = demand.iommu?.smmus?.length ?? 0;
  const smmusOk = !capacity.smmus || smmus === 0 || (candidate.usage.smmus ?? 0) + smmus <= capacity.smmus;
  return vcpusOk && memoryOk && vmsOk && smmusOk;
}

/** Share of the host left free after placing `demand`: the smaller of the vCPU and RAM shares. */
function freeShareAfter(candidate: PlacementCandidate, demand: Demand): number {
  const { capacity } = candidate.host;
  const vcpus = capacity.vcpus === 0 ? 1 : 1 - (candidate.usage.vcpus + demand.vcpus) / capacity.vcpus;
  const memory =
    capacity.memoryBytes === 0
      ? 1
      : 1 - (candidate.usage.memoryBytes + demand.memoryBytes) / capacity.memoryBytes;
  return Math.min(vcpus, memory);
}

/**
 * Hosts whose free share after placement is within this of the best one's are equally good:
 * placement picks one of them at random. Concurrent creates (several clients, several replicas)
 * that all picked the single best host would all swap against that host's usage and all but one
 * would lose, read again and retry; spread over the equally good hosts most of them win at once.
 */
const EQUALLY_GOOD_SHARE = 0.05;

/**
 * Picks the host for a VM: the requested one if it is available and fits, else, among the
 * available hosts that fit, one of those with the largest free share after placement (within
 * EQUALLY_GOOD_SHARE of the best, at random among those `rank` puts first (lowest): spreading
 * load and concurrent placements; PlacementView ranks the hosts other replicas write last). No
 * available host is UNAVAILABLE (503, retryable: hosts come back); no room on any is
 * RESOURCE_EXHAUSTED.
 */
export function chooseHost(
  candidates: readonly PlacementCandidate[],
  demand: Demand,
  requestedHost?: string,
  random: () => number = Math.random,
  rank: (host: string) => number = () => 0,
): { host: HostRecord; reason: string } {
  if (requestedHost !== undefined) {
    const chosen = candidates.find((c) => c.host.name === requestedHost);
    if (!chosen) {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "HOST_NOT_REGISTERED",
        message: `placement.host '${requestedHost}' is not a registered host`,
        field: "placement.host",
      });
    }
    if (!isAvailable(chosen)) {
      throw new VplaneError({
        code: "UNAVAILABLE",
        reason: "HOST_UNAVAILABLE",
        message: `placement.host '${requestedHost}' takes no new VMs now: ${chosen.availability?.message ?? ""}`,
        field: "placement.host",
      });
    }
    if (!fits(chosen, demand)) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "HOST_CAPACITY_EXCEEDED",
        message: `host '${requestedHost}' has not enough free vCPUs, guest RAM, VM or SMMU room for this VM`,
        field: "placement.host",
      });
    }
    return { host: chosen.host, reason: "requested by the caller" };
  }
  const available = candidates.filter(isAvailable);
  if (candidates.length > 0 && available.length === 0) {
    throw new VplaneError({
      code: "UNAVAILABLE",
      reason: "NO_HOST_AVAILABLE",
      message: `no host takes new VMs now: ${candidates.map((c) => c.availability?.message ?? c.host.name).join("; ")}`,
    });
  }
  const fitting = available.filter((c) => fits(c, demand));
  if (fitting.length === 0) {
    throw new VplaneError({
      code: candidates.length === 0 ? "FAILED_PRECONDITION" : "RESOURCE_EXHAUSTED",
      reason: candidates.length === 0 ? "NO_HOSTS" : "NO_HOST_WITH_CAPACITY",
      message:
        candidates.length === 0
          ? "no host is registered; an admin registers one with POST /v1/hosts"
          : `no host has ${demand.vcpus} vCPUs, ${demand.memoryBytes} bytes of guest RAM, a VM's and ${demand.iommu?.smmus?.length ?? 0} SMMUs' room free`,
    });
  }
  const bestShare = Math.max(...fitting.map((c) => freeShareAfter(c, demand)));
  const equallyGood = fitting.filter((c) => bestShare - freeShareAfter(c, demand) <= EQUALLY_GOOD_SHARE);
  const firstRank = Math.min(...equallyGood.map((c) => rank(c.host.name)));
  const preferred = equallyGood.filter((c) => rank(c.host.name) === firstRank);
  const chosen = preferred[Math.floor(random() * preferred.length)]!;
  return {
    host: chosen.host,
    reason: `chosen by free capacity among ${fitting.length} host(s) that fit (${Math.round(freeShareAfter(chosen, demand) * 100)}% left after placement)`,
  };
}
