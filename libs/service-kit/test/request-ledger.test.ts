import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { SqliteStore, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { failingWrites } from "../src/failing-writes.js";
import { REQUEST_RETENTION_MS, RequestLedger, type Applied } from "../src/request-ledger.js";
import type { VplaneError } from "../src/vplane-error.js";

const PREFIX = "svc/requests/";

describe("RequestLedger: apply → persist → remember, one rule for reused request ids", () => {
  let dir: string;
  let store: Store;
  let clock: number;
  const ledger = (perScope?: number) =>
    new RequestLedger(store, PREFIX, { now: () => clock, ...(perScope ? { perScope } : {}) });
  /** A mutation that counts its effects and writes one config record. */
  const counter = () => {
    let effects = 0;
    const apply = (): Applied<{ n: number }> => {
      effects++;
      return {
        answer: { n: effects },
        writes: [{ op: "put", key: `svc/config/${effects}`, value: effects }],
      };
    };
    return { apply, effects: () => effects };
  };
  const call = (requestId: string, request: unknown = { name: "d", value: 1n }, method = "Set") => ({
    scope: "vm-a",
    requestId,
    method,
    request,
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "vplane-ledger-"));
    store = new SqliteStore(join(dir, "s.db"));
    clock = 1_000_000;
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a retry gets the first answer and no second effect; an empty request_id runs every time", async () => {
    const l = ledger();
    const c = counter();
    assert.deepEqual(await l.run(call("r1"), c.apply), { n: 1 });
    assert.deepEqual(await l.run(call("r1"), c.apply), { n: 1 });
    assert.deepEqual(await l.run(call(""), c.apply), { n: 2 });
    assert.deepEqual(await l.run(call(""), c.apply), { n: 3 });
    assert.equal(c.effects(), 3);
  });

  it("the same request_id with another method or another message is INVALID_ARGUMENT REQUEST_ID_REUSED", async () => {
    const l = ledger();
    const c = counter();
    await l.run(call("r1"), c.apply);
    for (const other of [
      call("r1", { name: "d", value: 2n }),
      call("r1", { name: "d", value: 1n }, "Other"),
    ]) {
      await assert.rejects(
        l.run(other, c.apply),
        (e: VplaneError) =>
          e.code === "INVALID_ARGUMENT" && e.reason === "REQUEST_ID_REUSED" && e.field === "request_id",
      );
    }
    assert.equal(c.effects(), 1);
  });

  it("a retry arriving while the first still persists waits for its answer", async () => {
    const l = ledger();
    let effects = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const apply = (): Applied<string> => {
      effects++;
      return {
        answer: "done",
        writes: async (): Promise<TransactionOp[]> => {
          await held;
          return [];
        },
      };
    };
    const first = l.run(call("r1"), apply);
    const retry = l.run(call("r1"), apply);
    await assert.rejects(l.run(call("r1", { other: true }), apply), /REQUEST_ID_REUSED|was used/);
    release();
    assert.deepEqual(await Promise.all([first, retry]), ["done", "done"]);
    assert.equal(effects, 1);
  });

  it("a call that fails is not remembered (its retry runs again), but what it applied is written", async () => {
    const l = ledger();
    let tries = 0;
    const apply = (): Applied<string> => {
      tries++;
      const writes: TransactionOp[] = [{ op: "put", key: `svc/config/partial-${tries}`, value: tries }];
      return tries === 1 ? { error: new Error("stopped part way"), writes } : { answer: "ok", writes };
    };
    await assert.rejects(l.run(call("r1"), apply), /stopped part way/);
    assert.equal((await store.get("svc/config/partial-1"))?.value, 1);
    assert.equal(await l.run(call("r1"), apply), "ok");
    assert.equal(tries, 2);
  });

  it("a durable answer survives a restart (a new ledger on the store); a runtime-only one does not", async () => {
    const c = counter();
    await ledger().run(call("durable"), c.apply);
    let runtime = 0;
    await ledger().run(call("runtime"), () => ({ answer: ++runtime }));
    const after = ledger();
    await after.load(new Set(["vm-a"]));
    assert.deepEqual(await after.run(call("durable"), c.apply), { n: 1 });
    assert.equal(await after.run(call("runtime"), () => ({ answer: ++runtime })), 2);
    assert.equal(c.effects(), 1);
  });

  it("answers are kept 24 hours: after that the request_id runs afresh, and load drops them from the store", async () => {
    const l = ledger();
    const c = counter();
    await l.run(call("r1"), c.apply);
    clock += REQUEST_RETENTION_MS - 1;
    assert.deepEqual(await l.run(call("r1"), c.apply), { n: 1 });
    clock += 1;
    assert.deepEqual(await l.run(call("r1", { changed: true }), c.apply), { n: 2 });
    clock += REQUEST_RETENTION_MS;
    const restarted = ledger();
    await restarted.load(new Set(["vm-a"]));
    assert.deepEqual((await store.list(PREFIX)).entries, []);
  });

  it("keeps at most perScope answers per scope, dropping the oldest from memory and store", async () => {
    const l = ledger(2);
    const c = counter();
    for (const id of ["a", "b", "c"]) {
      clock++;
      await l.run(call(id), c.apply);
    }
    assert.deepEqual(await l.run(call("c"), c.apply), { n: 3 });
    assert.deepEqual(await l.run(call("a"), c.apply), { n: 4 }); // forgotten: runs again
    assert.equal((await store.list(PREFIX)).entries.length, 2);
  });

  it("forget drops a deleted scope's answers; load drops those of scopes that are gone", async () => {
    const l = ledger();
    const c = counter();
    await l.run(call("r1"), c.apply);
    await l.run({ ...call("r1"), scope: "vm-b" }, c.apply);
    await l.forget("vm-a");
    assert.deepEqual(await l.run(call("r1"), c.apply), { n: 3 });
    const restarted = ledger();
    await restarted.load(new Set(["vm-a"]));
    assert.deepEqual(
      (await store.list(PREFIX)).entries.map((e) => e.key.slice(PREFIX.length, PREFIX.length + 5)),
      ["vm-a/"],
    );
  });
});

describe("RequestLedger: never a half-applied change (a mutation whose writes fail is undone)", () => {
  /**
   * A device holding a list; each mutation appends its value, its undo takes it off again (the
   * undo of `brokenUndo` throws instead, leaving its value).
   */
  const device = (store: Store, brokenUndo?: number) => {
    const values: number[] = [];
    const undone: number[] = [];
    const ledger = new RequestLedger(store, PREFIX);
    const append = (value: number, requestId = "") =>
      ledger.run({ scope: "vm-a", requestId, method: "Append", request: { value } }, () => {
        values.push(value);
        return {
          answer: { values: [...values] },
          writes: [{ op: "put", key: `svc/config/${value}`, value }],
          undo: () => {
            undone.push(value);
            if (value === brokenUndo) throw new Error(`the undo of ${value} broke`);
            assert.equal(values.splice(values.lastIndexOf(value), 1)[0], value, "applied, not undone yet");
          },
        };
      });
    return { values, undone, append, ledger };
  };

  it("the failed mutation answers UNAVAILABLE STORE_UNAVAILABLE and the device is as before; its retry applies and writes", async () => {
    const failing = failingWrites(new SqliteStore(":memory:"));
    const d = device(failing.store);
    await d.append(1);
    failing.failNext();
    const refused = (await d.append(2, "r2").catch((e: unknown) => e)) as VplaneError;
    assert.deepEqual([refused.code, refused.reason], ["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    assert.deepEqual(d.values, [1]);
    assert.equal(await failing.store.get("svc/config/2"), undefined);
    assert.deepEqual(await d.append(2, "r2"), { values: [1, 2] }, "a failed call is not remembered");
    assert.equal((await failing.store.get("svc/config/2"))?.value, 2);
    await failing.store.close();
  });

  it("the mutations applied on top of it are undone with it, latest first, and answer UNAVAILABLE; a later one writes", async () => {
    const failing = failingWrites(new SqliteStore(":memory:"));
    const d = device(failing.store);
    failing.failNext();
    const answers = await Promise.allSettled([d.append(1), d.append(2), d.append(3)]);
    assert.deepEqual(
      answers.map((a) => (a.status === "rejected" ? (a.reason as VplaneError).code : "ok")),
      ["UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"],
    );
    assert.deepEqual([d.values, d.undone], [[], [3, 2, 1]]);
    assert.deepEqual(await d.append(4), { values: [4] });
    assert.deepEqual(
      (await failing.store.list("svc/config/")).entries.map((e) => e.value),
      [4],
    );
    await failing.store.close();
  });

  it("a write no call answers (follow: a migration's finish): the scope's later writes wait for it, and are undone if it fails", async () => {
    const store = new SqliteStore(":memory:");
    const d = device(store);
    let land!: () => void;
    d.ledger.follow("vm-a", new Promise<void>((resolve) => (land = resolve)));
    const first = d.append(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await store.get("svc/config/1"), undefined, "not written before the write it follows");
    land();
    assert.deepEqual(await first, { values: [1] });
    assert.equal((await store.get("svc/config/1"))?.value, 1);

    d.ledger.follow("vm-a", Promise.reject(new StoreUnavailableError("injected: the finish's write")));
    const refused = (await d.append(2).catch((e: unknown) => e)) as VplaneError;
    assert.deepEqual([refused.code, refused.reason], ["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    assert.deepEqual([d.values, d.undone], [[1], [2]]);
    assert.equal(await store.get("svc/config/2"), undefined);
    await store.close();
  });

  it("an undo that throws stops none of the others: each undone once, all answer UNAVAILABLE STORE_UNAVAILABLE, the broken one says so", async () => {
    const failing = failingWrites(new SqliteStore(":memory:"));
    const d = device(failing.store, 2);
    failing.failNext();
    const answers = await Promise.allSettled([d.append(1), d.append(2), d.append(3)]);
    const refused = answers.map((a) => (a.status === "rejected" ? (a.reason as VplaneError) : undefined));
    assert.deepEqual(
      refused.map((e) => [e?.code, e?.reason]),
      Array(3).fill(["UNAVAILABLE", "STORE_UNAVAILABLE"]),
    );
    assert.deepEqual([d.values, d.undone], [[2], [3, 2, 1]], "1 undone after 2's undo threw; none twice");
    assert.match(refused[1]!.message, /undoing this change failed \(the undo of 2 broke\)/);
    assert.match(refused[0]!.message, /this change was undone: retry/);
    assert.deepEqual(await d.append(4), { values: [2, 4] }, "the next call applies and writes");
    assert.deepEqual(
      (await failing.store.list("svc/config/")).entries.map((e) => e.value),
      [4],
    );
    await failing.store.close();
  });
});
