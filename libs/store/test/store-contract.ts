// The behaviour every Store backend owes its callers, as one suite that each backend's test file
// runs against itself (SQLite file, real etcd). Not a test file on its own.

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import {
  MAX_TRANSACTION_OPS,
  MAX_VALUE_BYTES,
  StoreConflictError,
  StoreError,
  StoreInvalidArgumentError,
  listAll,
  type JsonValue,
  type Store,
} from "../src/index.js";

export interface StoreBackendUnderTest {
  /**
   * Prepares empty storage for one test and returns a function that opens a client on it; each
   * call opens another client on the same data (another connection, as a second gateway would).
   */
  freshStorage(): Promise<() => Store>;
}

export function describeStoreContract(name: string, backend: StoreBackendUnderTest): void {
  describe(`${name}: Store contract`, () => {
    const opened: Store[] = [];
    const openClients = async (): Promise<() => Store> => {
      const open = await backend.freshStorage();
      return () => {
        const store = open();
        opened.push(store);
        return store;
      };
    };
    const openStore = async (): Promise<Store> => (await openClients())();

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    it("gets undefined for a missing key, and what was put, with its revision", async () => {
      const store = await openStore();
      assert.equal(await store.get("vms/a/vm-1"), undefined);
      const revision = await store.put("vms/a/vm-1", { name: "vm-1", vcpus: 4 });
      assert.ok(revision > 0);
      assert.deepEqual(await store.get("vms/a/vm-1"), {
        key: "vms/a/vm-1",
        value: { name: "vm-1", vcpus: 4 },
        revision,
      });
    });

    it("round-trips every JSON kind and raw bytes", async () => {
      const store = await openStore();
      const values: JsonValue[] = [
        null,
        true,
        false,
        0,
        -1.5,
        2 ** 53 - 1,
        "",
        "é ✓",
        [],
        [1, [2]],
        {},
        { a: { b: [null] } },
      ];
      for (const [index, value] of values.entries()) {
        await store.put(`v/${index}`, value);
        assert.deepEqual((await store.get(`v/${index}`))?.value, value);
      }
      const bytes = new Uint8Array([0, 1, 2, 255, 0x7b]);
      await store.put("v/bytes", bytes);
      const read = (await store.get("v/bytes"))?.value;
      assert.ok(read instanceof Uint8Array);
      assert.deepEqual([...read], [...bytes]);
      await store.put("v/empty-bytes", new Uint8Array(0));
      assert.deepEqual((await store.get("v/empty-bytes"))?.value, new Uint8Array(0));
    });

    it("gives every write a larger revision than the one before", async () => {
      const store = await openStore();
      const first = await store.put("k/1", 1);
      const second = await store.put("k/2", 2);
      const third = await store.put("k/1", 3);
      assert.ok(first < second && second < third);
      assert.equal((await store.get("k/1"))?.revision, third);
      assert.equal((await store.get("k/2"))?.revision, second);
    });

    describe("compare-and-swap", () => {
      it('creates with ifRevision "absent" once; the second create is a conflict naming the winner', async () => {
        const store = await openStore();
        const revision = await store.put("vms/a/vm-1", { v: 1 }, { ifRevision: "absent" });
        const error = await rejectionOf(store.put("vms/a/vm-1", { v: 2 }, { ifRevision: "absent" }));
        assert.ok(error instanceof StoreConflictError);
        assert.equal(error.key, "vms/a/vm-1");
        assert.equal(error.expected, "absent");
        assert.equal(error.actual, revision);
        assert.deepEqual((await store.get("vms/a/vm-1"))?.value, { v: 1 });
      });

      it("updates only from the revision last read", async () => {
        const store = await openStore();
        const created = await store.put("k", "a");
        const updated = await store.put("k", "b", { ifRevision: created });
        assert.ok(updated > created);
        const stale = await rejectionOf(store.put("k", "c", { ifRevision: created }));
        assert.ok(stale instanceof StoreConflictError);
        assert.equal(stale.expected, created);
        assert.equal(stale.actual, updated);
        const missing = await rejectionOf(store.put("other", "x", { ifRevision: created }));
        assert.ok(missing instanceof StoreConflictError);
        assert.equal(missing.actual, "absent");
        assert.equal((await store.get("k"))?.value, "b");
        assert.equal(await store.get("other"), undefined);
      });

      it("deletes only from the revision last read", async () => {
        const store = await openStore();
        const revision = await store.put("k", 1);
        await assert.rejects(store.delete("k", { ifRevision: revision + 1000 }), StoreConflictError);
        assert.ok(await store.get("k"));
        assert.equal(await store.delete("k", { ifRevision: revision }), true);
        assert.equal(await store.get("k"), undefined);
        const gone = await rejectionOf(store.delete("k", { ifRevision: revision }));
        assert.ok(gone instanceof StoreConflictError);
        assert.equal(gone.actual, "absent");
        assert.equal(await store.delete("k", { ifRevision: "absent" }), false);
      });

      it("refuses revisions that cannot exist", async () => {
        const store = await openStore();
        for (const ifRevision of [0, -1, 1.5, Number.NaN]) {
          await assert.rejects(store.put("k", 1, { ifRevision }), StoreInvalidArgumentError);
        }
      });
    });

    it("deletes, saying whether the key existed", async () => {
      const store = await openStore();
      await store.put("k", 1);
      assert.equal(await store.delete("k"), true);
      assert.equal(await store.delete("k"), false);
      assert.equal(await store.get("k"), undefined);
    });

    describe("list", () => {
      it("pages through a prefix in key order, and only that prefix", async () => {
        const store = await openStore();
        const keys = Array.from({ length: 25 }, (_, i) => `vms/t1/vm-${String(i).padStart(2, "0")}`);
        for (const key of [...keys].reverse()) await store.put(key, { key });
        await store.put("vms/t10/vm-00", "other tenant");
        await store.put("vms/t1", "the prefix itself is not under vms/t1/");
        await store.put("vms/t0/vm-99", "before");
        const seen: string[] = [];
        let pageToken: string | undefined;
        let pages = 0;
        do {
          const page = await store.list("vms/t1/", { pageSize: 10, pageToken });
          pages++;
          assert.ok(page.entries.length <= 10);
          for (const entry of page.entries) {
            seen.push(entry.key);
            assert.deepEqual(entry.value, { key: entry.key });
            assert.ok(entry.revision > 0);
          }
          pageToken = page.nextPageToken;
        } while (pageToken !== undefined);
        assert.deepEqual(seen, keys);
        assert.ok(pages === 3 || pages === 4, `pages: ${pages}`);
      });

      it("listAll gathers every page of a prefix, in key order, and only that prefix", async () => {
        const store = await openStore();
        const keys = Array.from({ length: 25 }, (_, i) => `vms/t1/vm-${String(i).padStart(2, "0")}`);
        for (const key of [...keys].reverse()) await store.put(key, { key });
        await store.put("vms/t10/vm-00", "other tenant");
        const all = await listAll(store, "vms/t1/", 10);
        assert.deepEqual(
          all.map((entry) => entry.key),
          keys,
        );
        assert.ok(all.every((entry) => entry.revision > 0));
        assert.deepEqual(await listAll(store, "nothing/"), []);
      });

      it("lists everything under the empty prefix, and nothing under an unused one", async () => {
        const store = await openStore();
        await store.put("b", 2);
        await store.put("a/x", 1);
        await store.put("~~", 3);
        const all = await store.list("");
        assert.deepEqual(
          all.entries.map((entry) => entry.key),
          ["a/x", "b", "~~"],
        );
        assert.equal(all.nextPageToken, undefined);
        assert.deepEqual((await store.list("nothing/")).entries, []);
        assert.deepEqual(
          (await store.list("~")).entries.map((entry) => entry.key),
          ["~~"],
        );
      });

      it("gives no next token when the last page is exactly full", async () => {
        const store = await openStore();
        for (const key of ["p/1", "p/2", "p/3", "p/4"]) await store.put(key, 0);
        const first = await store.list("p/", { pageSize: 2 });
        assert.deepEqual(
          first.entries.map((entry) => entry.key),
          ["p/1", "p/2"],
        );
        const second = await store.list("p/", { pageSize: 2, pageToken: first.nextPageToken });
        assert.deepEqual(
          second.entries.map((entry) => entry.key),
          ["p/3", "p/4"],
        );
        if (second.nextPageToken !== undefined) {
          const third = await store.list("p/", { pageSize: 2, pageToken: second.nextPageToken });
          assert.deepEqual(third.entries, []);
        }
      });

      it("refuses a page token from another prefix, a garbled token and a bad page size", async () => {
        const store = await openStore();
        for (const key of ["p/1", "p/2"]) await store.put(key, 0);
        const { nextPageToken } = await store.list("p/", { pageSize: 1 });
        assert.ok(nextPageToken);
        await assert.rejects(store.list("q/", { pageToken: nextPageToken }), StoreInvalidArgumentError);
        await assert.rejects(store.list("p/", { pageToken: "not a token" }), StoreInvalidArgumentError);
        for (const pageSize of [0, 1001, 2.5]) {
          await assert.rejects(store.list("p/", { pageSize }), StoreInvalidArgumentError);
        }
      });
    });

    describe("transaction", () => {
      it("applies every op at one revision", async () => {
        const store = await openStore();
        await store.put("old", 0);
        const { revision } = await store.transaction([
          { op: "put", key: "vms/a/vm-1", value: { state: "CREATING" }, ifRevision: "absent" },
          { op: "put", key: "names/a/web", value: "vm-1", ifRevision: "absent" },
          { op: "delete", key: "old" },
          { op: "delete", key: "never-existed" },
        ]);
        assert.equal((await store.get("vms/a/vm-1"))?.revision, revision);
        assert.equal((await store.get("names/a/web"))?.revision, revision);
        assert.equal(await store.get("old"), undefined);
      });

      it("writes nothing when one condition fails, and names the first that failed", async () => {
        const store = await openStore();
        const existing = await store.put("names/a/web", "vm-0");
        const tenant = await store.put("tenants/a", { quota: 2 });
        const error = await rejectionOf(
          store.transaction([
            { op: "put", key: "vms/a/vm-1", value: {}, ifRevision: "absent" },
            { op: "check", key: "tenants/a", ifRevision: tenant },
            { op: "put", key: "names/a/web", value: "vm-1", ifRevision: "absent" },
            { op: "delete", key: "tenants/a" },
            { op: "put", key: "vms/a/vm-2", value: {}, ifRevision: 12345678 },
          ]),
        );
        assert.ok(error instanceof StoreConflictError);
        assert.equal(error.key, "names/a/web");
        assert.equal(error.expected, "absent");
        assert.equal(error.actual, existing);
        assert.equal(await store.get("vms/a/vm-1"), undefined);
        assert.equal(await store.get("vms/a/vm-2"), undefined);
        assert.equal((await store.get("tenants/a"))?.revision, tenant);
        assert.equal((await store.get("names/a/web"))?.value, "vm-0");
      });

      it("evaluates conditions against the state before the transaction", async () => {
        const store = await openStore();
        // The check sees "k" absent although an earlier op of the same transaction puts it.
        await store.transaction([
          { op: "put", key: "k", value: 1 },
          { op: "check", key: "k", ifRevision: "absent" },
          { op: "put", key: "j", value: 1 },
        ]);
        assert.ok(await store.get("k"));
        assert.ok(await store.get("j"));
      });

      it("moves a key atomically (delete one, create another)", async () => {
        const store = await openStore();
        const revision = await store.put("hosts/h1/vms/vm-1", { vm: "vm-1" });
        await store.transaction([
          { op: "delete", key: "hosts/h1/vms/vm-1", ifRevision: revision },
          { op: "put", key: "hosts/h2/vms/vm-1", value: { vm: "vm-1" }, ifRevision: "absent" },
        ]);
        assert.equal(await store.get("hosts/h1/vms/vm-1"), undefined);
        assert.ok(await store.get("hosts/h2/vms/vm-1"));
        await assert.rejects(
          store.transaction([
            { op: "delete", key: "hosts/h1/vms/vm-1", ifRevision: revision },
            { op: "put", key: "hosts/h3/vms/vm-1", value: {}, ifRevision: "absent" },
          ]),
          StoreConflictError,
        );
        assert.equal(await store.get("hosts/h3/vms/vm-1"), undefined);
      });

      it("refuses two writes of one key, too many ops, and a check without a condition", async () => {
        const store = await openStore();
        await assert.rejects(
          store.transaction([
            { op: "put", key: "k", value: 1 },
            { op: "delete", key: "k" },
          ]),
          StoreInvalidArgumentError,
        );
        // Every backend takes at least etcd's limit; each refuses one op more than its own.
        assert.ok(store.maxTransactionOps >= MAX_TRANSACTION_OPS);
        const many = Array.from({ length: store.maxTransactionOps + 1 }, (_, i) => ({
          op: "put" as const,
          key: `k/${i}`,
          value: i,
        }));
        await assert.rejects(store.transaction(many), StoreInvalidArgumentError);
        await store.transaction(many.slice(0, store.maxTransactionOps));
        assert.equal(
          (await store.get(`k/${store.maxTransactionOps - 1}`))?.value,
          store.maxTransactionOps - 1,
        );
        assert.equal(await store.get(`k/${store.maxTransactionOps}`), undefined);
        await assert.rejects(
          store.transaction([{ op: "check", key: "k" } as never]),
          StoreInvalidArgumentError,
        );
      });
    });

    it('reads a "deferred" transaction back at once, and sync() resolves once it is durable', async () => {
      const store = await openStore();
      const { revision } = await store.transaction([{ op: "put", key: "vms/a/vm-1", value: { v: 1 } }], {
        durability: "deferred",
      });
      assert.deepEqual(await store.get("vms/a/vm-1"), { key: "vms/a/vm-1", value: { v: 1 }, revision });
      await store.sync();
      assert.ok((await store.put("vms/a/vm-1", { v: 2 })) > revision, "later writes go on as before");
    });

    it("refuses bad keys and oversized values without writing", async () => {
      const store = await openStore();
      for (const key of ["", "has space", "tab\t", "ünïcode", "x".repeat(513), "nul\0"]) {
        await assert.rejects(store.put(key, 1), StoreInvalidArgumentError, JSON.stringify(key));
        await assert.rejects(store.get(key), StoreInvalidArgumentError);
      }
      await assert.rejects(store.put("big", "x".repeat(MAX_VALUE_BYTES)), StoreInvalidArgumentError);
      await assert.rejects(store.put("undefined", undefined as never), StoreInvalidArgumentError);
      assert.deepEqual((await store.list("")).entries, []);
    });

    it("fails every call after close with a StoreError", async () => {
      const store = await openStore();
      await store.close();
      await assert.rejects(store.get("k"), StoreError);
      await assert.rejects(store.put("k", 1), StoreError);
    });

    describe("two clients on the same data", () => {
      it("racing to create one key: exactly one wins", async () => {
        const open = await openClients();
        const clients = [open(), open()];
        for (let round = 0; round < 10; round++) {
          const key = `vms/a/race-${round}`;
          const results = await Promise.allSettled(
            clients.flatMap((client, c) =>
              [0, 1, 2].map((i) => client.put(key, { by: `${c}.${i}` }, { ifRevision: "absent" })),
            ),
          );
          const won = results.filter((result) => result.status === "fulfilled");
          const lost = results.filter((result) => result.status === "rejected");
          assert.equal(won.length, 1, `round ${round}`);
          for (const result of lost) assert.ok(result.reason instanceof StoreConflictError);
        }
      });

      it("creating many keys at once: none lost, none duplicated", async () => {
        const open = await openClients();
        const [one, two] = [open(), open()];
        const keys = Array.from({ length: 200 }, (_, i) => `vms/a/vm-${String(i).padStart(3, "0")}`);
        const revisions = await Promise.all(
          keys.map((key, i) => (i % 2 === 0 ? one : two).put(key, { i }, { ifRevision: "absent" })),
        );
        assert.equal(new Set(revisions).size, keys.length, "each write has its own revision");
        const listed: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await two.list("vms/a/", { pageSize: 64, pageToken });
          listed.push(...page.entries.map((entry) => entry.key));
          pageToken = page.nextPageToken;
        } while (pageToken);
        assert.deepEqual(listed, keys);
      });

      it("incrementing one counter with read, compare-and-swap, retry: no update lost", async () => {
        const open = await openClients();
        const clients = [open(), open()];
        await clients[0]?.put("counter", 0);
        const increment = async (store: Store) => {
          for (;;) {
            const entry = await store.get("counter");
            assert.ok(entry);
            try {
              await store.put("counter", (entry.value as number) + 1, { ifRevision: entry.revision });
              return;
            } catch (error) {
              if (!(error instanceof StoreConflictError)) throw error;
            }
          }
        };
        await Promise.all(clients.flatMap((client) => Array.from({ length: 15 }, () => increment(client))));
        assert.equal((await clients[1]?.get("counter"))?.value, 30);
      });
    });
  });
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}
