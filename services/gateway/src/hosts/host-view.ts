import type { Host } from "../schemas/host-schema.js";
import type { HostState } from "./host-states.js";

/** A host as the API shows it: its record, usage, whether it takes new VMs and its lease. */
export function hostView(state: HostState): Host {
  const { host, usage, availability, lease } = state;
  return {
    ...host,
    usage: usage.value,
    availability,
    ...(lease
      ? {
          lease: {
            renewTime: new Date(lease.renewedAtMs).toISOString(),
            expireTime: new Date(lease.renewedAtMs + lease.ttlMs).toISOString(),
            agentVersion: lease.agentVersion,
          },
        }
      : {}),
  };
}
