// The Store contract: namespaced keys, JSON (or byte) values, one revision counter per store,
// compare-and-swap on every write, atomic multi-key transactions. SqliteStore and EtcdStore
// implement it with the same semantics; test/store-contract.ts holds both to it.

/** A value that survives JSON.stringify/JSON.parse unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What a key holds: a JSON value, or raw bytes (returned as a Uint8Array). */
export type StoreValue = JsonValue | Uint8Array;

/**
 * A write condition. A number: the key must exist with exactly this revision (the `revision` its
 * last `get` or `list` returned). "absent": the key must not exist (create-only).
 * Equivalent to etcd's `mod_revision ==` and `create_revision == 0` compares.
 */
export type ExpectedRevision = number | "absent";

export interface StoreEntry {
  key: string;
  value: StoreValue;
  /** The store revision of the write that last changed this key (etcd's mod_revision). */
  revision: number;
}

export interface ListOptions {
  /** Most entries in one page. Default 100, range 1 to 1000. */
  pageSize?: number;
  /** `nextPageToken` of the previous page of the same prefix; omit for the first page. */
  pageToken?: string;
}

export interface ListPage {
  /** Ordered by key, byte-wise ascending. */
  entries: StoreEntry[];
  /** Present when more entries may follow; pass it as `pageToken` to get them. */
  nextPageToken?: string;
}

export interface WriteCondition {
  /** Apply the write only if the key is in this state; otherwise StoreConflictError. */
  ifRevision?: ExpectedRevision;
}

/** One step of a transaction. "check" writes nothing; it only adds a condition. */
export type TransactionOp =
  | { op: "put"; key: string; value: StoreValue; ifRevision?: ExpectedRevision }
  | { op: "delete"; key: string; ifRevision?: ExpectedRevision }
  | { op: "check"; key: string; ifRevision: ExpectedRevision };

/**
 * When a write is durable. "immediate" (the default): on disk (or on a quorum of etcd members)
 * when its promise resolves. "deferred": applied and visible to every later read when its promise
 * resolves, durable once a `sync()` called after it resolved; a process that dies in between
 * keeps it (it is in the operating system's file cache), a power cut may lose it. A live
 * migration's FinishImport writes so: its devices resume before the disk is flushed, and the
 * source lets the VM go only once that flush is done (docs/live-migration.md).
 */
export interface WriteOptions {
  durability?: "immediate" | "deferred";
}

export interface TransactionResult {
  /** The store revision of the transaction: every key it put now has this revision. */
  revision: number;
}

export interface Store {
  /** The entry under `key`, or undefined when there is none. */
  get(key: string): Promise<StoreEntry | undefined>;

  /**
   * One page of the entries whose key starts with `prefix` ("" lists everything), ordered by key.
   * Pages are not a snapshot: a key written between two pages shows up if it sorts after the
   * last key already returned.
   */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;

  /** Writes `value` under `key` and returns the new revision. */
  put(key: string, value: StoreValue, options?: WriteCondition): Promise<number>;

  /**
   * Removes `key`. Returns true if it existed. With `ifRevision` a number, a missing key is a
   * conflict (actual "absent"); with "absent", deleting is a no-op check that the key is absent.
   */
  delete(key: string, options?: WriteCondition): Promise<boolean>;

  /**
   * Applies every op or none. All conditions are evaluated first, against the state before the
   * transaction; if any fails, nothing is written and StoreConflictError names the first that
   * failed (in `ops` order). A key may appear in at most one put/delete op; at most
   * `maxTransactionOps` ops. Deleting a key that does not exist is not an error.
   */
  transaction(ops: readonly TransactionOp[], options?: WriteOptions): Promise<TransactionResult>;

  /**
   * Resolves once every write applied before the call is durable (the "deferred" ones too), without
   * blocking the event loop; rejects with StoreUnavailableError when the disk refuses. etcd's
   * writes are durable when applied: it resolves at once.
   */
  sync(): Promise<void>;

  /**
   * Most ops one transaction of this backend takes: MAX_TRANSACTION_OPS for etcd (its
   * --max-txn-ops), more for SQLite, where one transaction is one fsync. Bulk writers chunk by it.
   */
  readonly maxTransactionOps: number;

  /** Releases the backend (file handle, connections). Further calls fail. */
  close(): Promise<void>;
}
