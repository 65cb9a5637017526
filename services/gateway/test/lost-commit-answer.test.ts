// A request's commit transaction applied, but its answer was lost (an etcd member killed mid-call)
// and the store's client sent it again: the retry finds the request's own write and reports it as
// a conflict (EtcdStore's contract). The gateway recognises its own write and goes on, instead of
// answering 409 VM_EXISTS to the create that made the VM (seen in `npm run bench -- fleet` during
// the member kill) or 409 CONCURRENT_MODIFICATION to a delete.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StoreConflictError, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { suiteGatewayOverStore, type OperationJson } from "./support/test-gateway.js";

/**
 * A store whose next VM transaction (armed.next) or next operation record write (armed.nextPut)
 * applies, then fails as its lost-answer retry would; or whose next commit (a transaction with an
 * operation record and a VM, armed.commitUnavailable) applies, then fails as unavailable (the
 * store's client gave up: the outcome is unknown to the caller); or whose next operation record
 * write fails as unavailable (armed.putUnavailable: after applying, or without), or whose next create's
 * insert (the VM put create-only) fails as unavailable (armed.insertUnavailable: after applying,
 * or without), or whose next delete's or migrate's start (the VM and a new operation) applies, then
 * fails as unavailable (armed.startUnavailable); whose reads (get) fail as unavailable while
 * armed.readsDown (set by that start when armed.readsDownAfterStart).
 */
interface Armed {
  next: boolean;
  nextPut: boolean;
  commitUnavailable: boolean;
  putUnavailable: "applied" | "refused" | false;
  insertUnavailable: "applied" | "refused" | false;
  startUnavailable: boolean;
  /** The id of the operation whose start was answered unavailable. */
  started?: string;
  /** readsDown from the start answered unavailable on (the request's own reads before it go through). */
  readsDownAfterStart: boolean;
  readsDown: boolean;
}

function losingNextAnswer(store: Store, armed: Armed): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]) =>
        (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      if (property === "put")
        return async (key: string, record: unknown, condition?: { ifRevision?: number | "absent" }) => {
          if (!key.startsWith("operations/") || condition?.ifRevision === undefined)
            return call(key, record, condition);
          if (armed.putUnavailable) {
            const applies = armed.putUnavailable === "applied";
            armed.putUnavailable = false;
            if (applies) await call(key, record, condition);
            throw new StoreUnavailableError("etcd unavailable: no leader (injected)");
          }
          if (!armed.nextPut) return call(key, record, condition);
          armed.nextPut = false;
          const revision = (await call(key, record, condition)) as number;
          throw new StoreConflictError(key, condition.ifRevision, revision);
        };
      if (property === "get")
        return async (key: string) => {
          if (armed.readsDown) throw new StoreUnavailableError("etcd unavailable: no leader (injected)");
          return call(key);
        };
      if (property !== "transaction") return call;
      return async (ops: TransactionOp[]) => {
        const vmPut = ops.find((op) => op.op === "put" && op.key.startsWith("vms/"));
        const commits = vmPut?.op === "put" && typeof vmPut.ifRevision === "number"; // not the insert
        const starts = ops.some(
          (op) => op.op === "put" && op.key.startsWith("operations/") && op.ifRevision === "absent",
        );
        if (armed.startUnavailable && commits && starts) {
          armed.startUnavailable = false;
          armed.started = ops
            .find((op) => op.key.startsWith("operations/"))
            ?.key.split("/")
            .pop();
          armed.readsDown = armed.readsDownAfterStart;
          await call(ops);
          throw new StoreUnavailableError("etcd unavailable: the answer was lost (injected)");
        }
        if (armed.insertUnavailable && vmPut?.op === "put" && vmPut.ifRevision === "absent") {
          const applies = armed.insertUnavailable === "applied";
          armed.insertUnavailable = false;
          if (applies) await call(ops);
          throw new StoreUnavailableError("etcd unavailable: the answer was lost (injected)");
        }
        if (armed.commitUnavailable && commits && ops.some((op) => op.key.startsWith("operations/"))) {
          armed.commitUnavailable = false;
          await call(ops);
          throw new StoreUnavailableError("etcd unavailable: the answer was lost (injected)");
        }
        if (!armed.next || !vmPut || vmPut.op !== "put" || vmPut.ifRevision === undefined) return call(ops);
        armed.next = false;
        const { revision } = (await call(ops)) as { revision: number };
        throw new StoreConflictError(vmPut.key, vmPut.ifRevision, revision);
      };
    },
  });
}

const vm = (name: string) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
});

describe("a commit whose answer was lost and whose retry found its own write", () => {
  const armed: Armed = {
    next: false,
    nextPut: false,
    commitUnavailable: false,
    putUnavailable: false,
    insertUnavailable: false,
    startUnavailable: false,
    readsDownAfterStart: false,
    readsDown: false,
  };
  const suite = suiteGatewayOverStore((store) => losingNextAnswer(store, armed));

  /** Creates `name` with one SMMU (a checkpoint alone comes before the SMMU's create); its events. */
  async function createOnceEach(name: string) {
    const body = { ...vm(name), iommu: { smmus: [{ name: "s0" }] } };
    const done = await suite.gw.waitForOperation(
      "operator",
      (await suite.gw.call("operator", "POST", "/v1/vms", body)).json<OperationJson>().name,
    );
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    const { events } = (await suite.gw.services.operations.get(
      "acme",
      done.name.slice("operations/".length),
    ))!.value;
    const messages = events.map((e) => e.message);
    assert.equal(new Set(messages).size, messages.length, `no event twice: ${JSON.stringify(messages)}`);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: events.length }, (_, i) => i + 1),
    );
  }

  it("a create goes on (202, SUCCEEDED), a delete too; a real conflict is still 409 VM_EXISTS", async () => {
    const body = vm("lost-1");
    armed.next = true;
    const created = await suite.gw.call("operator", "POST", "/v1/vms", body);
    assert.equal(created.statusCode, 202, created.body);
    assert.equal(armed.next, false, "the lost answer was injected");
    const done = await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));

    const again = await suite.gw.call("operator", "POST", "/v1/vms", body);
    assert.equal(again.statusCode, 409);
    assert.equal(again.json<{ error: { reason: string } }>().error.reason, "VM_EXISTS");

    armed.next = true;
    const deleting = await suite.gw.call("operator", "DELETE", "/v1/vms/lost-1");
    assert.equal(deleting.statusCode, 202, deleting.body);
    assert.equal(armed.next, false);
    const deleted = await suite.gw.waitForOperation("operator", deleting.json<OperationJson>().name);
    assert.equal(deleted.metadata.state, "SUCCEEDED", JSON.stringify(deleted.error));
  });

  for (const how of ["applied", "refused"] as const) {
    it(`a step's record write left unanswered by the registry (${how}) is written again: the create SUCCEEDS, every event once`, async () => {
      // An etcd election after a member's loss makes the registry unavailable for a second or
      // two; a running create outlasts it (it failed INTERNAL in the fleet bench's member kill).
      armed.putUnavailable = how;
      await createOnceEach(`unanswered-${how}`);
      assert.equal(armed.putUnavailable, false, "the unavailable answer was injected");
    });
  }

  it("a create whose insert applied but was answered unavailable is read back and runs: 202, SUCCEEDED (not 503 with its operation left RUNNING, unrun)", async () => {
    // The kill phase of `npm run bench -- fleet`: the client's retry with its Idempotency-Key got
    // the stored 202 of an operation no replica ran, RUNNING at "queued" for good.
    armed.insertUnavailable = "applied";
    const created = await suite.gw.call("operator", "POST", "/v1/vms", vm("lost-insert"));
    assert.equal(armed.insertUnavailable, false, "the unavailable answer was injected");
    assert.equal(created.statusCode, 202, created.body);
    const done = await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
  });

  it("a create whose insert applied but stayed unanswered past its read-back answers 503; its replica runs the operation once the registry answers, so the retry with its Idempotency-Key is answered an operation that SUCCEEDS (not one RUNNING, unrun)", async () => {
    // The gap ce999c8 left: the read-back of the VM (~3 s) and of the key found no member to answer.
    const key = { "idempotency-key": "unanswered-insert-1" };
    armed.insertUnavailable = "applied";
    armed.readsDown = true;
    const first = await suite.gw.call("operator", "POST", "/v1/vms", vm("unanswered-insert"), key);
    armed.readsDown = false;
    assert.equal(armed.insertUnavailable, false, "the unavailable answer was injected");
    assert.equal(first.statusCode, 503, first.body);
    const retry = await suite.gw.call("operator", "POST", "/v1/vms", vm("unanswered-insert"), key);
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(retry.headers["idempotent-replayed"], "true");
    const done = await suite.gw.waitForOperation("operator", retry.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    const stored = await suite.gw.services.vms.require("acme", "unanswered-insert");
    assert.equal(stored.value.state, "READY");
  });

  it("a delete whose start applied but was answered unavailable is read back and runs: 202, SUCCEEDED", async () => {
    const created = await suite.gw.call("operator", "POST", "/v1/vms", vm("lost-start"));
    await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    armed.startUnavailable = true;
    const deleting = await suite.gw.call("operator", "DELETE", "/v1/vms/lost-start");
    assert.equal(armed.startUnavailable, false, "the unavailable answer was injected");
    assert.equal(deleting.statusCode, 202, deleting.body);
    const deleted = await suite.gw.waitForOperation("operator", deleting.json<OperationJson>().name);
    assert.equal(deleted.metadata.state, "SUCCEEDED", JSON.stringify(deleted.error));
  });

  it("a delete whose start applied but stayed unanswered past its read-back answers 503; its replica runs the operation once the registry answers: it SUCCEEDS, the VM gone (not DELETING for good, its operation RUNNING, unrun)", async () => {
    await suite.gw.createVm("operator", vm("unanswered-delete"));
    armed.startUnavailable = true;
    armed.readsDownAfterStart = true;
    const first = await suite.gw.call("operator", "DELETE", "/v1/vms/unanswered-delete");
    armed.readsDownAfterStart = armed.readsDown = false;
    assert.equal(armed.startUnavailable, false, "the unavailable answer was injected");
    assert.equal(first.statusCode, 503, first.body);
    const done = await suite.gw.waitForOperation("operator", `operations/${armed.started}`);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    assert.equal((await suite.gw.call("operator", "GET", "/v1/vms/unanswered-delete")).statusCode, 404);
  });

  it("a migrate whose start applied but stayed unanswered past its read-back answers 503; its replica runs the operation once the registry answers, so the retry with its Idempotency-Key is answered an operation that ends, the VM free again", async () => {
    // The fake host has no migration service: the migration fails at its start, and the VM stays
    // where it was. What counts is that it ends: unrun, it stayed RUNNING and the VM busy for good.
    await suite.gw.services.hosts.register({ name: "h2", addresses: suite.host.addresses }, "api");
    await suite.gw.createVm("operator", vm("unanswered-migrate"));
    const key = { "idempotency-key": "unanswered-migrate-1" };
    const body = { destinationHost: "h2" };
    const url = "/v1/vms/unanswered-migrate:migrate";
    armed.startUnavailable = true;
    armed.readsDownAfterStart = true;
    const first = await suite.gw.call("operator", "POST", url, body, key);
    armed.readsDownAfterStart = armed.readsDown = false;
    assert.equal(armed.startUnavailable, false, "the unavailable answer was injected");
    assert.equal(first.statusCode, 503, first.body);
    const retry = await suite.gw.call("operator", "POST", url, body, key);
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(retry.headers["idempotent-replayed"], "true");
    const done = await suite.gw.waitForOperation("operator", retry.json<OperationJson>().name);
    assert.ok(done.done);
    const stored = await suite.gw.services.vms.require("acme", "unanswered-migrate");
    assert.equal(stored.value.activeOperation, undefined, "the VM is free again");
  });

  it("a create whose insert did not apply and was answered unavailable answers 503 REGISTRY_UNAVAILABLE, nothing stored", async () => {
    armed.insertUnavailable = "refused";
    const created = await suite.gw.call("operator", "POST", "/v1/vms", vm("refused-insert"));
    assert.equal(armed.insertUnavailable, false, "the unavailable answer was injected");
    assert.equal(created.statusCode, 503, created.body);
    assert.equal(created.json<{ error: { reason: string } }>().error.reason, "REGISTRY_UNAVAILABLE");
    assert.equal((await suite.gw.call("operator", "GET", "/v1/vms/refused-insert")).statusCode, 404);
  });

  it("an operation record write that applied is not applied twice: every event once, in order", async () => {
    armed.nextPut = true;
    await createOnceEach("lost-2");
    assert.equal(armed.nextPut, false, "the lost answer was injected");
  });

  it("a commit that ends the create, applied but answered unavailable, is read back: SUCCEEDED, VM READY, its controller kept", async () => {
    armed.commitUnavailable = true;
    const created = await suite.gw.call("operator", "POST", "/v1/vms", vm("lost-3"));
    assert.equal(created.statusCode, 202, created.body);
    const done = await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    assert.equal(armed.commitUnavailable, false, "the unavailable answer was injected");
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    await suite.gw.services.runner.drain();
    const got = await suite.gw.call("operator", "GET", "/v1/vms/lost-3");
    assert.equal(got.json<{ state: string }>().state, "READY");
    const uid = got.json<{ uid: string }>().uid;
    assert.ok(
      [...suite.host.controllers.values()].some((c) => c.vm === uid),
      "the controller was not rolled back",
    );
  });
});
