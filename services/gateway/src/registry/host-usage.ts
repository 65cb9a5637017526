import type { Store } from "@vplane/store";
import type { Vm } from "../schemas/vm-schema.js";
import { registryKeys } from "./registry-keys.js";
import { listAll, readRecord, type Versioned } from "./typed-entry.js";

/** What a host's placed VMs take; kept beside the host and changed with the VMs, under CAS. */
export interface HostUsage {
  vcpus: number;
  memoryBytes: number;
  vms: number;
  /** The VMs' SMMUs; absent in a usage written before they were counted (see withSmmusCounted). */
  smmus?: number;
}

export const NO_USAGE: HostUsage = { vcpus: 0, memoryBytes: 0, vms: 0, smmus: 0 };

/**
 * Host usages with their SMMU count made whole. A usage written before SMMUs were counted (or
 * since by a gateway of that version) has no `smmus`; read as 0, it would let placement put more
 * SMMUs on the host than its iommu takes, and a VM's removal would count them off from 0. Such a
 * count is made again from the VMs placed on the host (one read of every VM, only when a usage
 * lacks it). The revision stays the record's: a write that swaps against it stores the whole
 * count, and from then on the record has it.
 */
export async function withSmmusCounted(
  store: Store,
  usages: ReadonlyMap<string, Versioned<HostUsage>>,
): Promise<Map<string, Versioned<HostUsage>>> {
  const whole = new Map(usages);
  const uncounted = [...usages].filter(([, usage]) => usage.value.smmus === undefined);
  if (uncounted.length === 0) return whole;
  const smmusOn = new Map<string, number>();
  for (const { value: vm } of await listAll<Vm>(store, registryKeys.allVms()))
    smmusOn.set(vm.host, (smmusOn.get(vm.host) ?? 0) + vm.iommu.smmus.length);
  for (const [host, usage] of uncounted)
    whole.set(host, { ...usage, value: { ...usage.value, smmus: smmusOn.get(host) ?? 0 } });
  return whole;
}

/** The usage of `host` as stored, its SMMU count made whole (withSmmusCounted); undefined: none. */
export async function readUsage(store: Store, host: string): Promise<Versioned<HostUsage> | undefined> {
  const usage = await readRecord<HostUsage>(store, registryKeys.hostUsage(host));
  return usage && (await withSmmusCounted(store, new Map([[host, usage]]))).get(host);
}
