// A retry with the same Idempotency-Key after the gateway replica running the first request died
// before answering. A create (and a migrate) claims its key in its own transaction, with its
// answer: until then nothing holds the key, so a retry runs at once, and a first request that
// commits late finds the key taken and answers what the retry stored. A request that claims its
// key before it runs holds it "pending", under its replica's name: once that replica is known to
// have stopped (its heartbeat lapsed, the rule operation recovery uses), a retry takes the key
// over and runs; before that it is told when to come back.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { openStore, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { registryKeys } from "../src/registry/registry-keys.js";
import type { FakeHost } from "./support/fake-host.js";
import {
  startGatewayWithHost,
  startTestGateway,
  type OperationJson,
  type TestGateway,
} from "./support/test-gateway.js";

/** A store whose VM inserts (the create's commit) can be held, or failed once as unavailable. */
function controllableCommits(store: Store) {
  const control = {
    hold: undefined as Promise<void> | undefined,
    held: 0,
    failNext: false,
  };
  const isInsert = (ops: TransactionOp[]) =>
    ops.some((op) => op.op === "put" && op.key.startsWith("vms/") && op.ifRevision === "absent");
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]) =>
        (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      if (property === "transaction")
        return async (ops: TransactionOp[]) => {
          if (isInsert(ops) && control.hold) {
            control.held++;
            await control.hold;
          }
          if (isInsert(ops) && control.failNext) {
            control.failNext = false;
            throw new StoreUnavailableError("etcd: deadline exceeded (injected)");
          }
          return call(ops);
        };
      return call;
    },
  });
  return { store: proxy, control };
}

const vm = (name: string) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
});

describe("Idempotency-Key: a retry after the replica holding the key died", () => {
  const shared = openStore("sqlite::memory:");
  const { store, control } = controllableCommits(shared);
  let a: TestGateway;
  let b: TestGateway;
  let host: FakeHost;
  let close: () => Promise<void>;
  before(async () => {
    ({ gw: a, host, close } = await startGatewayWithHost({ store, idempotencyWaitMs: 300 }));
    b = await startTestGateway({ store: shared, tokens: a.tokens, idempotencyWaitMs: 300 });
    // Both replicas run, so both beat (startGateway's operation recovery does that).
    await a.services.heartbeats.beat(a.services.instanceId);
    await b.services.heartbeats.beat(b.services.instanceId);
  });
  after(async () => {
    await b.close();
    await close();
    await shared.close();
  });

  /** Sends a create with `key` to replica A and holds its transaction: as if A hung or died there. */
  const holdOnA = async (name: string, key: string) => {
    let release!: () => void;
    control.hold = new Promise((resolve) => (release = resolve));
    control.held = 0;
    const first = a.call("operator", "POST", "/v1/vms", vm(name), { "idempotency-key": key });
    while (control.held === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    control.hold = undefined;
    return { first, release };
  };
  /**
   * `key` held "pending" by a create on replica `owner` that claimed it before running (a route
   * without its answer in its effect does so, as did gateways before creates claimed with theirs).
   */
  const pendingOn = async (owner: TestGateway, key: string, name: string) => {
    const keyHash = createHash("sha256").update(key).digest("hex");
    const fingerprint = createHash("sha256")
      .update("POST /v1/vms\n")
      .update(JSON.stringify(vm(name)))
      .digest("hex");
    await shared.put(registryKeys.idempotency("acme", keyHash), {
      state: "pending",
      fingerprint,
      leaseUntil: Date.now() + 60_000,
      owner: owner.services.instanceId,
    });
  };
  const lapse = (gw: TestGateway) =>
    gw.services.heartbeats.beat(gw.services.instanceId, Date.now() - gw.services.heartbeats.leaseMs - 1);
  const controllersOf = (uid: string) => [...host.controllers.keys()].filter((k) => k.includes(uid));

  it("a create claims its key in its own transaction: a retry while the first is held runs at once, and the first, committing late, answers what the retry stored (one VM, one controller)", async () => {
    const { first, release } = await holdOnA("taken-1", "key-taken-1");
    const started = performance.now();
    const retry = await b.call("operator", "POST", "/v1/vms", vm("taken-1"), {
      "idempotency-key": "key-taken-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.ok(performance.now() - started < 300, "nothing held the key: no wait for the first");
    const done = await b.waitForOperation("operator", retry.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED");

    // A was only frozen: its transaction finds the VM and the key taken, so it stores nothing and
    // answers the answer stored under its key.
    release();
    const late = await first;
    assert.deepEqual(
      [late.statusCode, late.headers["idempotent-replayed"], late.json<OperationJson>().name],
      [202, "true", done.name],
    );
    const uid = (done.response as { uid: string }).uid;
    assert.equal(controllersOf(uid).length, 1, "one controller for the VM");
  });

  it("a key held pending while the holder's replica still beats: 409 IDEMPOTENT_REQUEST_IN_PROGRESS with Retry-After until its heartbeat would lapse; once it lapsed the retry takes it over and runs", async () => {
    await pendingOn(a, "key-pending-1", "pending-1");
    const early = await b.call("operator", "POST", "/v1/vms", vm("pending-1"), {
      "idempotency-key": "key-pending-1",
    });
    assert.equal(early.statusCode, 409, early.body);
    assert.equal(early.json<{ error: { reason: string } }>().error.reason, "IDEMPOTENT_REQUEST_IN_PROGRESS");
    const retryAfter = Number(early.headers["retry-after"]);
    const leaseS = a.services.heartbeats.leaseMs / 1000;
    assert.ok(
      retryAfter >= leaseS - 2 && retryAfter <= leaseS,
      `Retry-After ${retryAfter} s, lease ${leaseS} s`,
    );
    assert.equal((await b.call("operator", "GET", "/v1/vms/pending-1")).statusCode, 404, "nothing made");

    await lapse(a); // A stopped beating (kill -9): its lease is over
    const started = performance.now();
    const retry = await b.call("operator", "POST", "/v1/vms", vm("pending-1"), {
      "idempotency-key": "key-pending-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.ok(performance.now() - started < 300, "taken over at once, without waiting for the first");
    const done = await b.waitForOperation("operator", retry.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED");
    const replay = await a.call("operator", "POST", "/v1/vms", vm("pending-1"), {
      "idempotency-key": "key-pending-1",
    });
    assert.deepEqual(
      [replay.statusCode, replay.headers["idempotent-replayed"], replay.json<OperationJson>().name],
      [202, "true", done.name],
    );
    await a.services.heartbeats.beat(a.services.instanceId);
  });

  it("a replica with no heartbeat at all (stopped) holds no key: the retry runs at once", async () => {
    await pendingOn(a, "key-gone-1", "gone-1");
    await a.services.heartbeats.remove(a.services.instanceId);
    const retry = await b.call("operator", "POST", "/v1/vms", vm("gone-1"), {
      "idempotency-key": "key-gone-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(
      (await b.waitForOperation("operator", retry.json<OperationJson>().name)).metadata.state,
      "SUCCEEDED",
    );
    await a.services.heartbeats.beat(a.services.instanceId);
  });

  it("on the replica that holds it, a pending key whose request no longer runs there (it answered 503 and could not release the key) is taken over at once", async () => {
    await pendingOn(a, "key-stale-1", "stale-1");
    const retry = await a.call("operator", "POST", "/v1/vms", vm("stale-1"), {
      "idempotency-key": "key-stale-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(
      (await a.waitForOperation("operator", retry.json<OperationJson>().name)).metadata.state,
      "SUCCEEDED",
    );
  });

  it("a create whose transaction failed (503) leaves its key free: the retry runs at once", async () => {
    control.failNext = true;
    const failed = await a.call("operator", "POST", "/v1/vms", vm("failed-1"), {
      "idempotency-key": "key-failed-1",
    });
    assert.equal(failed.statusCode, 503, failed.body);
    const keyHash = createHash("sha256").update("key-failed-1").digest("hex");
    assert.equal(await shared.get(registryKeys.idempotency("acme", keyHash)), undefined, "no key stored");
    const retry = await b.call("operator", "POST", "/v1/vms", vm("failed-1"), {
      "idempotency-key": "key-failed-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    await b.waitForOperation("operator", retry.json<OperationJson>().name);
  });

  it("a retry that finds the first request's answer stored gets it, whatever became of that replica", async () => {
    const first = await a.call("operator", "POST", "/v1/vms", vm("kept-1"), {
      "idempotency-key": "key-kept-1",
    });
    assert.equal(first.statusCode, 202, first.body);
    await lapse(a);
    const retry = await b.call("operator", "POST", "/v1/vms", vm("kept-1"), {
      "idempotency-key": "key-kept-1",
    });
    assert.deepEqual(
      [retry.statusCode, retry.headers["idempotent-replayed"], retry.json<OperationJson>().name],
      [202, "true", first.json<OperationJson>().name],
    );
    await a.services.heartbeats.beat(a.services.instanceId);
    await a.waitForOperation("operator", first.json<OperationJson>().name);
  });
});
