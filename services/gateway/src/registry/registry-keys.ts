// Where the gateway keeps each kind of record in the Store. VMs and operations live under their
// tenant, so a lookup with another tenant's name cannot find them: a missing key is all it sees.

export const registryKeys = {
  host: (host: string) => `hosts/${host}`,
  hosts: () => "hosts/",
  hostUsage: (host: string) => `host-usage/${host}`,
  hostUsages: () => "host-usage/",
  /** Hosts, their usages and their leases: all start with "host", so placement reads them in one list. */
  hostsUsagesAndLeases: () => "host",
  hostLease: (host: string) => `host-leases/${host}`,
  hostLeases: () => "host-leases/",
  vm: (tenant: string, vm: string) => `vms/${tenant}/${vm}`,
  vmsOf: (tenant: string) => `vms/${tenant}/`,
  allVms: () => "vms/",
  operation: (tenant: string, id: string) => `operations/${tenant}/${id}`,
  operationsOf: (tenant: string) => `operations/${tenant}/`,
  allOperations: () => "operations/",
  /** One per unfinished operation, naming its owner: what the recovery looks at (OperationRecords). */
  runningOperation: (tenant: string, id: string) => `running-operations/${tenant}/${id}`,
  runningOperations: () => "running-operations/",
  idempotency: (tenant: string, keyHash: string) => `idempotency/${tenant}/${keyHash}`,
  allIdempotency: () => "idempotency/",
};
