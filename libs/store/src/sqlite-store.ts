// The embedded Store: one SQLite file (Node's built-in node:sqlite, so no native addon is compiled
// at install), for a single host.
//
// Durability: WAL journal with synchronous=FULL, so a write whose promise resolved is on disk and
// survives kill -9 or a power cut (with synchronous=NORMAL, WAL would only survive the former).
// A "deferred" write commits with synchronous=NORMAL (into the WAL file, no fsync: it survives
// kill -9, and NORMAL still syncs around checkpoints, so the file stays consistent) and without
// an automatic checkpoint (its fsyncs would stall the caller for milliseconds; the next immediate
// write's commit runs it); sync() then flushes the WAL and database files with fdatasync on
// libuv's thread pool, so that the flush blocks neither this event loop nor the next write
// (node:sqlite's own fsync would block both).
// Several processes may open the same file: every write runs in a BEGIN IMMEDIATE transaction,
// which takes SQLite's single write lock before reading the conditions, so compare-and-swap holds
// across processes too; anything thrown inside rolls the whole transaction back.
//
// Layout: `entries(key, revision, value)` and a one-row `store_revision` counter, bumped once per
// transaction that changes something, in that same transaction. `entries` is a rowid table (its
// key in the primary key's index), not WITHOUT ROWID: a WITHOUT ROWID table keeps whole rows in
// its b-tree, and a lookup that compares its key with a row whose value spills onto overflow
// pages reads that row whole (btree.c, sqlite3BtreeIndexMoveto): beside an imported interrupt
// controller's state in 512 KiB chunks, a small key's get took 0.15 ms (2 chunks, 8,192 sources)
// to 0.5-3 ms (40 chunks, 1,048,576 sources), and so did its write; 0.01-0.07 ms as a rowid
// table. `revision` before `value`: reading it stops before the value.
// A file with the old layout is moved to this one when opened (moveToRowidLayout).

import { mkdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { createRequire } from "node:module";
import type * as NodeSqlite from "node:sqlite";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { decodePageToken, encodePageToken, resolvePageSize } from "./page-token.js";
import { StoreError, StoreInvalidArgumentError, StoreUnavailableError } from "./store-error.js";
import { prefixRangeEnd, validateKey, validatePrefix } from "./store-key.js";
import {
  firstConflict,
  planDelete,
  planPut,
  planTransaction,
  type TransactionPlan,
} from "./transaction-plan.js";
import type {
  ListOptions,
  ListPage,
  Store,
  StoreEntry,
  StoreValue,
  TransactionOp,
  TransactionResult,
  WriteCondition,
  WriteOptions,
} from "./store.js";
import { decodeValue } from "./value-codec.js";
import { MAX_SQLITE_TRANSACTION_OPS } from "./store-limits.js";

export interface SqliteStoreOptions {
  /**
   * How long a write waits for another process's write lock on the same file before failing with
   * StoreUnavailableError, in milliseconds. Default 5000. Equivalent to SQLite's busy_timeout.
   */
  busyTimeoutMs?: number;
}

/** SQLite's default: a commit that leaves the WAL longer than this many pages checkpoints it. */
const WAL_AUTOCHECKPOINT_PAGES = 1000;

/** Greater than every valid key: keys use '!' to '~' (0x21 to 0x7e) only. */
const AFTER_ALL_KEYS = "\x7f";

interface EntryRow {
  key: string;
  value: Uint8Array;
  revision: number;
}

/**
 * SQLite primary result codes that mean "try again later", not "this request is wrong": BUSY,
 * LOCKED, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL, NOLFS (sqlite3.h). node:sqlite reports the
 * extended code in `errcode`; its low byte is the primary one.
 */
const UNAVAILABLE_CODES = new Set([5, 6, 8, 10, 13, 14, 15, 22]);

/**
 * node:sqlite, loaded when the first store opens rather than when this module is imported: code
 * that imports @vplane/store (the interrupt-controller's native backend among it) still loads on
 * Node 20, which has no node:sqlite and is the newest Node a ppc64le guest of the kernel tier has.
 */
function loadSqlite(): typeof NodeSqlite {
  return createRequire(import.meta.url)("node:sqlite") as typeof NodeSqlite;
}

export class SqliteStore implements Store {
  readonly path: string;
  readonly maxTransactionOps = MAX_SQLITE_TRANSACTION_OPS;
  private readonly db: DatabaseSync;
  private readonly statements: ReturnType<typeof prepareStatements>;

  /** Opens (creating if needed, with its parent directories) the database at `path`; ":memory:" for a private in-memory one. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    try {
      if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
      const { DatabaseSync } = loadSqlite();
      this.db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 });
      // 16 KiB pages (a new file only; an existing one keeps its own): a large value, such as an
      // imported interrupt controller's state written inside a migration's downtime, spans a
      // quarter of the overflow pages it would at 4 KiB (760 KB: 2.9 → 2.1 ms with its fsync).
      this.db.exec("PRAGMA page_size = 16384");
      if (path !== ":memory:") this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec("PRAGMA synchronous = FULL");
      // A 16 MiB page cache, as the better-sqlite3 build this store used before had by default
      // (SQLite's own default is 2 MiB: a few device states written in turn would not stay cached).
      this.db.exec("PRAGMA cache_size = -16000");
      moveToRowidLayout(this.db);
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS entries (${ENTRIES_COLUMNS});
        CREATE TABLE IF NOT EXISTS store_revision (
          id INTEGER PRIMARY KEY CHECK (id = 0),
          revision INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO store_revision (id, revision) VALUES (0, 0);
      `);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new StoreUnavailableError(`cannot open SQLite store at ${path}: ${detail}`, { cause: error });
    }
    this.statements = prepareStatements(this.db);
  }

  get(key: string): Promise<StoreEntry | undefined> {
    return this.run(() => {
      validateKey(key);
      const row = this.statements.get.get(key) as Omit<EntryRow, "key"> | undefined;
      return row && { key, value: decodeValue(row.value), revision: row.revision };
    });
  }

  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.run(() => {
      validatePrefix(prefix);
      const pageSize = resolvePageSize(options);
      const after = decodePageToken(prefix, options?.pageToken);
      const end = prefixRangeEnd(prefix) ?? AFTER_ALL_KEYS;
      const rows = (after === undefined
        ? this.statements.listFrom.all(prefix, end, pageSize + 1)
        : this.statements.listAfter.all(after, end, pageSize + 1)) as unknown as EntryRow[];
      const entries = rows
        .slice(0, pageSize)
        .map((row) => ({ key: row.key, value: decodeValue(row.value), revision: row.revision }));
      const last = entries.at(-1);
      return rows.length > pageSize && last
        ? { entries, nextPageToken: encodePageToken(prefix, last.key) }
        : { entries };
    });
  }

  put(key: string, value: StoreValue, options?: WriteCondition): Promise<number> {
    return this.run(() => {
      return this.applyPlan(planPut(key, value, options)).revision;
    });
  }

  delete(key: string, options?: WriteCondition): Promise<boolean> {
    return this.run(() => {
      return this.applyPlan(planDelete(key, options)).deleted[0] ?? false;
    });
  }

  transaction(ops: readonly TransactionOp[], options?: WriteOptions): Promise<TransactionResult> {
    return this.run(() => {
      const plan = planTransaction(ops, this.maxTransactionOps);
      if (options?.durability !== "deferred") return { revision: this.applyPlan(plan).revision };
      this.db.exec("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0");
      try {
        return { revision: this.applyPlan(plan).revision };
      } finally {
        this.db.exec(`PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      }
    });
  }

  /**
   * fdatasync of the WAL file and the database file (a file missing is one with nothing to
   * flush), through libuv's thread pool; fsync(2) flushes a file whatever descriptor names it.
   */
  async sync(): Promise<void> {
    if (this.path === ":memory:") return;
    if (!this.db.isOpen) throw new StoreError(`store ${this.path} is closed`);
    try {
      await Promise.all([`${this.path}-wal`, this.path].map(flushFile));
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new StoreUnavailableError(`SQLite store ${this.path} could not be flushed: ${detail}`, {
        cause: error,
      });
    }
  }

  close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
    return Promise.resolve();
  }

  /** Applies the plan in one BEGIN IMMEDIATE transaction: all of it, or (on any throw) none. */
  private applyPlan(plan: TransactionPlan): { revision: number; deleted: boolean[] } {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const applied = this.applyInTransaction(plan);
      this.db.exec("COMMIT");
      return applied;
    } catch (error) {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      throw error;
    }
  }

  private applyInTransaction(plan: TransactionPlan): { revision: number; deleted: boolean[] } {
    const { statements } = this;
    const revisionOf = (key: string) => statements.revisionOf.get(key) as { revision: number } | undefined;
    const conflict = firstConflict(plan.conditions, (key) => revisionOf(key)?.revision ?? "absent");
    if (conflict) throw conflict;
    const deleted = plan.writes
      .filter((write) => write.kind === "delete")
      .map((write) => revisionOf(write.key) !== undefined);
    const changes = deleted.includes(true) || plan.writes.some((write) => write.kind === "put");
    if (!changes) return { revision: revisionRow(statements.currentRevision).revision, deleted };
    const { revision } = revisionRow(statements.nextRevision);
    for (const write of plan.writes) {
      if (write.kind === "put") statements.upsert.run(write.key, write.value, revision);
      else statements.delete.run(write.key);
    }
    return { revision, deleted };
  }

  private run<T>(work: () => T): Promise<T> {
    try {
      if (!this.db.isOpen) throw new StoreError(`store ${this.path} is closed`);
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(sqliteError(error, `SQLite store ${this.path} failed`));
    }
  }
}

/** The columns of `entries` (see the layout above). */
const ENTRIES_COLUMNS = "key TEXT PRIMARY KEY NOT NULL, revision INTEGER NOT NULL, value BLOB NOT NULL";

/**
 * Moves a file's `entries` from the WITHOUT ROWID table of earlier versions to the rowid layout,
 * rows and revisions as they were, in one transaction (another process opening the same file
 * waits for it, then finds it done).
 */
function moveToRowidLayout(db: DatabaseSync): void {
  const layout = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'entries'");
  const withoutRowid = () =>
    /WITHOUT\s+ROWID/i.test((layout.get() as { sql: string } | undefined)?.sql ?? "");
  if (!withoutRowid()) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    if (withoutRowid()) {
      db.exec(`
        ALTER TABLE entries RENAME TO entries_without_rowid;
        CREATE TABLE entries (${ENTRIES_COLUMNS});
        INSERT INTO entries (key, revision, value) SELECT key, revision, value FROM entries_without_rowid;
        DROP TABLE entries_without_rowid;
      `);
    }
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

async function flushFile(path: string): Promise<void> {
  let file;
  try {
    file = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    await file.datasync();
  } finally {
    await file.close();
  }
}

function prepareStatements(db: DatabaseSync) {
  return {
    get: db.prepare("SELECT value, revision FROM entries WHERE key = ?"),
    listFrom: db.prepare(
      "SELECT key, value, revision FROM entries WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
    ),
    listAfter: db.prepare(
      "SELECT key, value, revision FROM entries WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
    ),
    revisionOf: db.prepare("SELECT revision FROM entries WHERE key = ?"),
    currentRevision: db.prepare("SELECT revision FROM store_revision WHERE id = 0"),
    nextRevision: db.prepare(
      "UPDATE store_revision SET revision = revision + 1 WHERE id = 0 RETURNING revision",
    ),
    upsert: db.prepare(
      `INSERT INTO entries (key, value, revision) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision`,
    ),
    delete: db.prepare("DELETE FROM entries WHERE key = ?"),
  };
}

function revisionRow(statement: StatementSync): { revision: number } {
  const row = statement.get() as { revision: number } | undefined;
  if (row === undefined) throw new StoreError("store_revision row is missing; the database is damaged");
  return row;
}

function sqliteError(error: unknown, context: string): StoreError {
  if (error instanceof StoreError) return error;
  const { errcode, errstr } = (error ?? {}) as { errcode?: unknown; errstr?: unknown };
  const detail = error instanceof Error ? error.message : String(error);
  if (typeof errcode === "number" && UNAVAILABLE_CODES.has(errcode & 0xff)) {
    return new StoreUnavailableError(`${context}: ${String(errstr)} (SQLite code ${errcode}): ${detail}`, {
      cause: error,
    });
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    return new StoreInvalidArgumentError(`${context}: ${detail}`, { cause: error });
  }
  return new StoreError(`${context}: ${detail}`, { cause: error });
}
