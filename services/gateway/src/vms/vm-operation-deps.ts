import type { TransactionOp } from "@vplane/store";
import type { HostConnections } from "../hosts/host-clients.js";
import type { HostStates } from "../hosts/host-states.js";
import type { OperationRecord, OperationRecords } from "../operations/operation-records.js";
import type { OperationRunner } from "../operations/operation-runner.js";
import type { HostRegistry } from "../registry/host-registry.js";
import type { VmRegistry } from "../registry/vm-registry.js";

/** Writes that must land in the same transaction as the operation (the idempotency record). */
export type ExtraOps = (operation: OperationRecord) => TransactionOp[];

/** What the VM operations (create and delete, migrate) work with. */
export interface VmOperationDeps {
  hosts: HostRegistry;
  /** Hosts with usage, lease and health: whether placement may use each. */
  hostStates: HostStates;
  vms: VmRegistry;
  operations: OperationRecords;
  runner: OperationRunner;
  connections: HostConnections;
  /** Names this gateway instance in the operations it runs. */
  instanceId: string;
}
