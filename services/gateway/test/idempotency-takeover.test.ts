// A retry with the same Idempotency-Key after the gateway replica running the first request died
// before answering: the replica held the key in the registry ("pending", under its name). Once
// that replica is known to have stopped (its heartbeat lapsed, the rule operation recovery
// uses), the retry takes the key over and runs; before that it is told when to come back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openStore, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import type { FakeHost } from "./support/fake-host.js";
import {
  startGatewayWithHost,
  startTestGateway,
  type OperationJson,
  type TestGateway,
} from "./support/test-gateway.js";

/** A store whose VM inserts (the create's commit) can be held, or failed along with its cleanup. */
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
          if (isInsert(ops) && control.failNext)
            throw new StoreUnavailableError("etcd: deadline exceeded (injected)");
          return call(ops);
        };
      if (property === "delete")
        return (key: string, ...rest: unknown[]) => {
          if (key.startsWith("idempotency/") && control.failNext) {
            control.failNext = false;
            return Promise.reject(new StoreUnavailableError("etcd: deadline exceeded (injected)"));
          }
          return call(key, ...rest);
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

  /** Sends a create with `key` to replica A and holds it after the key is reserved: as if A hung or died there. */
  const holdOnA = async (name: string, key: string) => {
    let release!: () => void;
    control.hold = new Promise((resolve) => (release = resolve));
    control.held = 0;
    const first = a.call("operator", "POST", "/v1/vms", vm(name), { "idempotency-key": key });
    while (control.held === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    control.hold = undefined;
    return { first, release };
  };
  const lapse = (gw: TestGateway) =>
    gw.services.heartbeats.beat(gw.services.instanceId, Date.now() - gw.services.heartbeats.leaseMs - 1);
  const controllersOf = (uid: string) => [...host.controllers.keys()].filter((k) => k.includes(uid));

  it("while the holder's replica still beats: 409 IDEMPOTENT_REQUEST_IN_PROGRESS with Retry-After until its heartbeat would lapse; once it lapsed the retry runs, and the first changes nothing", async () => {
    const { first, release } = await holdOnA("taken-1", "key-taken-1");
    const early = await b.call("operator", "POST", "/v1/vms", vm("taken-1"), {
      "idempotency-key": "key-taken-1",
    });
    assert.equal(early.statusCode, 409, early.body);
    assert.equal(early.json<{ error: { reason: string } }>().error.reason, "IDEMPOTENT_REQUEST_IN_PROGRESS");
    const retryAfter = Number(early.headers["retry-after"]);
    const leaseS = a.services.heartbeats.leaseMs / 1000;
    assert.ok(
      retryAfter >= leaseS - 2 && retryAfter <= leaseS,
      `Retry-After ${retryAfter} s, lease ${leaseS} s`,
    );

    await lapse(a); // A stopped beating (kill -9): its lease is over
    const started = performance.now();
    const retry = await b.call("operator", "POST", "/v1/vms", vm("taken-1"), {
      "idempotency-key": "key-taken-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.ok(performance.now() - started < 300, "taken over at once, without waiting for the first");
    const done = await b.waitForOperation("operator", retry.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED");

    // A was only frozen: its create commits under compare-and-swap on the key it reserved, which
    // the retry took over, so it fails and stores nothing.
    release();
    const late = await first;
    assert.notEqual(late.statusCode, 202, late.body);
    const uid = (done.response as { uid: string }).uid;
    assert.equal(controllersOf(uid).length, 1, "one controller for the VM");
    const replay = await b.call("operator", "POST", "/v1/vms", vm("taken-1"), {
      "idempotency-key": "key-taken-1",
    });
    assert.deepEqual(
      [replay.statusCode, replay.headers["idempotent-replayed"], replay.json<OperationJson>().name],
      [202, "true", done.name],
    );
    await a.services.heartbeats.beat(a.services.instanceId);
  });

  it("a replica with no heartbeat at all (stopped) holds no key: the retry runs at once", async () => {
    const { first, release } = await holdOnA("gone-1", "key-gone-1");
    await a.services.heartbeats.remove(a.services.instanceId);
    const retry = await b.call("operator", "POST", "/v1/vms", vm("gone-1"), {
      "idempotency-key": "key-gone-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    release();
    await first;
    assert.equal(
      (await b.waitForOperation("operator", retry.json<OperationJson>().name)).metadata.state,
      "SUCCEEDED",
    );
    await a.services.heartbeats.beat(a.services.instanceId);
  });

  it("on the replica that held it, a key whose request ended without recording an answer (503, its cleanup failed too) is taken over at once", async () => {
    control.failNext = true;
    const failed = await a.call("operator", "POST", "/v1/vms", vm("stale-1"), {
      "idempotency-key": "key-stale-1",
    });
    assert.equal(failed.statusCode, 503, failed.body);
    assert.equal(control.failNext, false, "the cleanup of the key failed too: it stays pending");
    const retry = await a.call("operator", "POST", "/v1/vms", vm("stale-1"), {
      "idempotency-key": "key-stale-1",
    });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(
      (await a.waitForOperation("operator", retry.json<OperationJson>().name)).metadata.state,
      "SUCCEEDED",
    );
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
