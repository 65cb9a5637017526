import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { SqliteStore, StoreUnavailableError } from "../src/index.js";
import { describeStoreContract } from "./store-contract.js";

const root = mkdtempSync(join(tmpdir(), "vplane-store-"));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const freshFile = () => join(root, `db-${++files}`, "registry.db");

describeStoreContract("SqliteStore (file)", {
  freshStorage: () => {
    const path = freshFile();
    return Promise.resolve(() => new SqliteStore(path));
  },
});

describe("SqliteStore (:memory:)", () => {
  it("stores and lists without a file", async () => {
    const store = new SqliteStore(":memory:");
    const revision = await store.put("k", { a: 1 }, { ifRevision: "absent" });
    assert.deepEqual(await store.list(""), { entries: [{ key: "k", value: { a: 1 }, revision }] });
    await store.close();
  });
});

describe("SqliteStore durability", () => {
  it("keeps what was written across close and reopen, revisions included", async () => {
    const path = freshFile();
    const first = new SqliteStore(path);
    const revision = await first.put("vms/a/vm-1", { vcpus: 2 });
    await first.close();
    const second = new SqliteStore(path);
    assert.deepEqual(await second.get("vms/a/vm-1"), { key: "vms/a/vm-1", value: { vcpus: 2 }, revision });
    assert.ok((await second.put("vms/a/vm-2", {})) > revision, "the revision counter carries on");
    await second.close();
  });

  for (const durability of ["immediate", "deferred"]) {
    const what = durability === "deferred" ? "deferred writes, never synced" : "immediate writes";
    it(`keeps every acknowledged write of a process killed with SIGKILL (${what})`, async () => {
      await killedWriterKeepsItsWrites(durability);
    });
  }

  async function killedWriterKeepsItsWrites(durability: string) {
    const path = freshFile();
    const writer = fileURLToPath(new URL("./fixtures/acknowledged-writer.js", import.meta.url));
    const child = spawn(process.execPath, [writer, path, durability], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let lastAcked = -1;
    let buffered = "";
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) lastAcked = Number(line);
        if (lastAcked >= 200 && !child.killed) {
          child.kill("SIGKILL");
          resolve();
        }
      });
    });
    await exited;
    const store = new SqliteStore(path);
    const { entries } = await store.list("acked/", { pageSize: 1000 });
    const written = new Set(entries.map((entry) => (entry.value as { i: number }).i));
    for (let i = 0; i <= lastAcked; i++) assert.ok(written.has(i), `acknowledged write ${i} is missing`);
    await store.close();
  }

  it("opens new files with WAL, synchronous=FULL and 16 KiB pages; an existing file keeps its page size", async () => {
    const pragmas = (store: SqliteStore) => {
      const db = (store as unknown as { db: DatabaseSync }).db;
      const read = (name: string) => Object.values(db.prepare(`PRAGMA ${name}`).get() ?? {})[0];
      return { journal: read("journal_mode"), synchronous: read("synchronous"), pageSize: read("page_size") };
    };
    const path = freshFile();
    const store = new SqliteStore(path);
    assert.deepEqual(pragmas(store), { journal: "wal", synchronous: 2, pageSize: 16384 });
    await store.close();
    const old = join(root, "old-4k.db");
    const made = new DatabaseSync(old);
    made.exec("PRAGMA page_size = 4096; CREATE TABLE t (x); DROP TABLE t;");
    made.close();
    const reopened = new SqliteStore(old);
    assert.deepEqual(pragmas(reopened), { journal: "wal", synchronous: 2, pageSize: 4096 });
    await reopened.close();
  });

  // A WITHOUT ROWID table reads a whole overflowing row to compare keys with it: every lookup
  // beside an imported controller's 512 KiB state chunks cost ~0.5 ms (sqlite-store.ts layout).
  it("keeps entries in a rowid table with the revision before the value, and moves a file of the WITHOUT ROWID layout to it, entries and revisions kept", async () => {
    const tableSql = (db: DatabaseSync) =>
      (db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'entries'").get() as { sql: string }).sql;
    const rowidLayout =
      /^CREATE TABLE entries \(key TEXT PRIMARY KEY NOT NULL, revision INTEGER NOT NULL, value BLOB NOT NULL\)$/;
    const path = freshFile();
    const store = new SqliteStore(path);
    const big = new Uint8Array(512 * 1024).fill(7);
    await store.put("a/state/0", big);
    const revision = await store.put("a/record", { vm: "a" });
    assert.match(tableSql((store as unknown as { db: DatabaseSync }).db), rowidLayout);
    await store.close();
    // The layout every file had before: the same rows in a WITHOUT ROWID table, value before revision.
    const made = new DatabaseSync(path);
    made.exec(`
      ALTER TABLE entries RENAME TO rowid_entries;
      CREATE TABLE entries (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, revision INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO entries SELECT key, value, revision FROM rowid_entries;
      DROP TABLE rowid_entries;
    `);
    made.close();
    const reopened = new SqliteStore(path);
    assert.match(tableSql((reopened as unknown as { db: DatabaseSync }).db), rowidLayout);
    assert.deepEqual(await reopened.get("a/record"), { key: "a/record", value: { vm: "a" }, revision });
    assert.deepEqual((await reopened.get("a/state/0"))?.value, big);
    assert.ok((await reopened.put("a/record", { vm: "a", n: 2 }, { ifRevision: revision })) > revision);
    await reopened.close();
  });

  it("a write blocked by another connection's write lock past the busy timeout is unavailable, and changes nothing", async () => {
    const path = freshFile();
    const store = new SqliteStore(path, { busyTimeoutMs: 50 });
    await store.put("k", { v: 1 });
    const other = new DatabaseSync(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      await assert.rejects(store.put("k", { v: 2 }), StoreUnavailableError);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.deepEqual((await store.get("k"))?.value, { v: 1 });
    assert.ok((await store.put("k", { v: 3 })) > 0, "the store works again once the lock is gone");
    await store.close();
  });

  it('commits a "deferred" transaction with synchronous=NORMAL and no checkpoint, then goes back to FULL and 1000 pages, and sync() flushes it', async () => {
    const path = freshFile();
    const store = new SqliteStore(path);
    const db = (store as unknown as { db: DatabaseSync }).db;
    const pragma = (name: string) => Object.values(db.prepare(`PRAGMA ${name}`).get() ?? {})[0];
    const seen: unknown[] = [];
    const exec = db.exec.bind(db);
    db.exec = (sql: string) => {
      if (sql === "COMMIT") seen.push([pragma("synchronous"), pragma("wal_autocheckpoint")]);
      exec(sql);
    };
    await store.transaction([{ op: "put", key: "k", value: 1 }], { durability: "deferred" });
    await store.transaction([{ op: "put", key: "k", value: 2 }]);
    assert.deepEqual(
      seen,
      [
        [1, 0],
        [2, 1000],
      ],
      "NORMAL (1) without a checkpoint for the deferred commit, FULL (2) with SQLite's default for the next",
    );
    await store.sync();
    await store.close();
    const reopened = new SqliteStore(path);
    assert.equal((await reopened.get("k"))?.value, 2);
    await reopened.close();
  });

  it("sync() that cannot flush the WAL file rejects as unavailable (the durable step failed)", async () => {
    const path = freshFile();
    const store = new SqliteStore(path);
    await store.transaction([{ op: "put", key: "k", value: 1 }], { durability: "deferred" });
    // SQLite keeps writing through its open descriptor; the path sync() opens loops.
    renameSync(`${path}-wal`, `${path}-wal.moved`);
    symlinkSync(`${path}-wal`, `${path}-wal`);
    try {
      await assert.rejects(store.sync(), StoreUnavailableError);
    } finally {
      rmSync(`${path}-wal`);
      renameSync(`${path}-wal.moved`, `${path}-wal`);
    }
    await store.sync();
    await store.close();
  });

  it("reports a file it cannot open as unavailable", () => {
    const notADirectory = join(root, "plain-file");
    writeFileSync(notADirectory, "");
    assert.throws(() => new SqliteStore(join(notADirectory, "registry.db")), StoreUnavailableError);
  });
});
