import type { Store, TransactionOp } from "@vplane/store";
import type { Operation, OperationEvent } from "../schemas/operation-schema.js";
import { registryKeys } from "../registry/registry-keys.js";
import { listPage, putOp, readRecord, type RecordForm, type Versioned } from "../registry/typed-entry.js";
import { updateRecord } from "../registry/update-loop.js";
import { recordOf, storedForm } from "./stored-operation.js";

/** An operation as the registry keeps it: the API view plus its progress events and runner. */
export type OperationRecord = Operation & {
  /** Progress events, oldest first, the last MAX_EVENTS kept; SSE replays them after Last-Event-ID. */
  events: OperationEvent[];
  /** The gateway instance running it. */
  owner: string;
};

export const MAX_EVENTS = 200;

export function operationId(record: Pick<Operation, "name">): string {
  return record.name.slice("operations/".length);
}

/** The API view of a record: everything but the runner's bookkeeping. */
export function operationView(record: OperationRecord): Operation {
  const { events: _events, owner: _owner, ...view } = record;
  return view;
}

const STORED: RecordForm<OperationRecord> = {
  read: (value) => recordOf<OperationRecord>(value),
  write: storedForm,
};

/**
 * The gateway's operation records in the registry (one per create, delete or migrate, under its
 * tenant), shared by every gateway replica. Not to be confused with the migration service's own
 * in-memory MigrationOperations, which this gateway follows for a migrate.
 */
export class OperationRecords {
  constructor(private readonly store: Store) {}

  key(tenant: string, id: string): string {
    return registryKeys.operation(tenant, id);
  }

  async get(tenant: string, id: string): Promise<Versioned<OperationRecord> | undefined> {
    return readRecord(this.store, this.key(tenant, id), STORED);
  }

  async list(tenant: string, pageSize: number, pageToken?: string) {
    const page = await listPage(this.store, registryKeys.operationsOf(tenant), pageSize, pageToken, STORED);
    return { operations: page.items, nextPageToken: page.nextPageToken };
  }

  /** The write that stores a new operation's record, for its start's transaction. */
  create(record: OperationRecord): TransactionOp {
    return putOp(this.key(record.metadata.tenant, operationId(record)), storedForm(record), "absent");
  }

  /**
   * Writes `record` if the stored one is still at `revision`, with `along` in the same
   * transaction; the new revision.
   */
  async put(
    tenant: string,
    id: string,
    record: OperationRecord,
    revision: number,
    along: TransactionOp[] = [],
  ): Promise<number> {
    if (along.length === 0)
      return this.store.put(this.key(tenant, id), storedForm(record), { ifRevision: revision });
    const put = putOp(this.key(tenant, id), storedForm(record), revision);
    return (await this.store.transaction([put, ...along])).revision;
  }

  update(tenant: string, id: string, mutate: (current: OperationRecord) => OperationRecord | undefined) {
    return updateRecord(this.store, this.key(tenant, id), mutate, STORED);
  }
}
