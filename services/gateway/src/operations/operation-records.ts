import type { Operation, OperationEvent } from "../schemas/operation-schema.js";
import { registryKeys } from "../registry/registry-keys.js";
import { listAll, type Store, type TransactionOp } from "@vplane/store";
import {
  listPage,
  putAlong,
  putOp,
  readRecord,
  type RecordForm,
  type Versioned,
} from "../registry/typed-entry.js";
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

/** An unfinished operation, as the running-operations index names it. */
export interface RunningOperation {
  tenant: string;
  id: string;
  owner: string;
}

/**
 * The gateway's operation records in the registry (one per create, delete or migrate, under its
 * tenant), shared by every gateway replica. Not to be confused with the migration service's own
 * in-memory MigrationOperations, which this gateway follows for a migrate.
 *
 * Beside them, an index of the unfinished ones (`running-operations/{tenant}/{id}`, naming the
 * owner), written in the very transactions that start an operation, change its owner (an
 * adoption) and end it: what the recovery reads every few seconds, a dozen keys where the
 * records are thousands. Records written before the index (by an older gateway) have no entry.
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

  /** Every unfinished operation the index names. */
  async running(): Promise<RunningOperation[]> {
    const prefix = registryKeys.runningOperations();
    return (await listAll(this.store, prefix)).map(({ key, value }) => {
      const [tenant = "", id = ""] = key.slice(prefix.length).split("/");
      return { tenant, id, owner: (value as { owner: string }).owner };
    });
  }

  /** Removes an index entry whose record ended without removing it (an older gateway ended it). */
  async forget(tenant: string, id: string): Promise<void> {
    await this.store.delete(registryKeys.runningOperation(tenant, id));
  }

  /** The writes that store a new operation's record and its index entry, for its start's transaction. */
  create(record: OperationRecord): TransactionOp[] {
    const { tenant } = record.metadata;
    const id = operationId(record);
    return [
      putOp(this.key(tenant, id), storedForm(record), "absent"),
      ...this.indexed(tenant, id, undefined, record),
    ];
  }

  /**
   * Writes `record`, which follows `before`, if the stored one is still at `revision`, with
   * `along` in the same transaction; the new revision.
   */
  async put(
    tenant: string,
    id: string,
    record: OperationRecord,
    revision: number,
    before: OperationRecord,
    along: TransactionOp[] = [],
  ): Promise<number> {
    const ops = [...this.indexed(tenant, id, before, record), ...along];
    return putAlong(this.store, this.key(tenant, id), storedForm(record), revision, ops);
  }

  update(tenant: string, id: string, mutate: (current: OperationRecord) => OperationRecord | undefined) {
    return updateRecord(this.store, this.key(tenant, id), mutate, STORED, (before, after) =>
      this.indexed(tenant, id, before, after),
    );
  }

  /** The index writes that go with a record changed from `before` (undefined: new) to `after`. */
  private indexed(
    tenant: string,
    id: string,
    before: OperationRecord | undefined,
    after: OperationRecord,
  ): TransactionOp[] {
    const key = registryKeys.runningOperation(tenant, id);
    if (after.done) return before?.done === false ? [{ op: "delete", key }] : [];
    return before?.owner === after.owner && !before.done ? [] : [putOp(key, { owner: after.owner })];
  }
}
