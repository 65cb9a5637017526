// How many registry writes a VM create costs. On etcd each write is a quorum round with an fsync
// on every member, and a create's writes follow one another, so their number sets how fast a
// fleet creates VMs (bench/src/fleet-bench.ts). A create writes its operation record once before
// each host call that changes something (the checkpoint a cancel is seen at) but the first, which
// follows the create's own transaction, not once per event.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Store, type TransactionOp } from "@vplane/store";
import { observedStore } from "./support/observed-store.js";
import { smallVm } from "./support/small-vm.js";
import { suiteGatewayOverStore, startTestGateway, type OperationJson } from "./support/test-gateway.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The records a create writes: its VM, its host's usage, its operation and its entry in the
 * running-operations index, its idempotency key.
 */
const CREATE_RECORDS = /^(vms|host-usage|operations|running-operations|idempotency)\//;

/** A store that counts the writes (put, delete, transaction: one each) touching CREATE_RECORDS. */
function countingWrites(store: Store, count: { writes: number }): Store {
  return observedStore(store, (method, args) => {
    const keys =
      method === "transaction"
        ? (args[0] as TransactionOp[]).map((op) => op.key)
        : method === "put" || method === "delete"
          ? [args[0] as string]
          : [];
    if (keys.some((key) => CREATE_RECORDS.test(key))) count.writes++;
  });
}

describe("registry writes per VM create", () => {
  const count = { writes: 0 };
  const suite = suiteGatewayOverStore((store) => countingWrites(store, count));

  const create = async (body: Record<string, unknown>, headers?: Record<string, string>) => {
    count.writes = 0;
    const created = await suite.gw.call("operator", "POST", "/v1/vms", body, headers);
    assert.equal(created.statusCode, 202, created.body);
    const done = await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    await suite.gw.services.runner.drain();
    return { writes: count.writes, done };
  };

  it("a create without SMMUs writes 2 times: accept (which the controller's create follows unwritten), VM READY with the last checkpoint that ends the operation", async () => {
    const { writes, done } = await create(smallVm("plain-1"));
    assert.equal(writes, 2);
    // Nothing of the record is lost by writing it less often: every step and event is there.
    assert.deepEqual(
      done.metadata.steps.map((s) => [s.name, s.state]),
      [
        ["host.GetCapabilities", "SUCCEEDED"],
        ["interrupt-controller.CreateController", "SUCCEEDED"],
        ["registry.commit", "SUCCEEDED"],
      ],
    );
    const events = (await suite.gw.services.operations.get("acme", done.name.slice("operations/".length)))!
      .value.events;
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: events.length }, (_, i) => i + 1),
    );
    assert.equal(done.metadata.lastSeq, events.length);
    // Its running-operations entry came and went in those 2 writes.
    assert.deepEqual(await suite.gw.services.operations.running(), []);
  });

  it("with an Idempotency-Key, no write more: the key is claimed in the create's own transaction, with its answer", async () => {
    const { writes } = await create(smallVm("keyed-1"), { "idempotency-key": "writes-keyed-1" });
    assert.equal(writes, 2);
  });

  it("each host call that changes something after the controller's create adds one write: 2 SMMUs with a device each cost 6", async () => {
    const { writes } = await create(
      smallVm("smmus-1", [
        { name: "s0", devices: [{ physicalSid: 16, virtualSid: 1 }] },
        { name: "s1", devices: [{ physicalSid: 17, virtualSid: 1 }] },
      ]),
    );
    // accept + (2 SMMUs, 2 attaches) + VM READY with the last checkpoint and the end
    assert.equal(writes, 1 + 4 + 1);
  });

  it("the VM READY goes only with a checkpoint that finds no cancel: one made through another replica during the last host call stops the commit, and the create rolls back", async () => {
    const replica = await startTestGateway({ store: suite.gw.services.store, tokens: suite.gw.tokens });
    let release!: () => void;
    suite.host.holds.set("CreateController", new Promise<void>((resolve) => (release = resolve)));
    try {
      const callsBefore = suite.host.calls.length;
      const created = await suite.gw.call("operator", "POST", "/v1/vms", smallVm("cancelled-1"));
      const name = created.json<OperationJson>().name;
      const calls = () => suite.host.calls.slice(callsBefore);
      while (!calls().some((c) => c.startsWith("CreateController"))) await sleep(5);
      // While it runs, the running-operations index names it and the replica running it.
      assert.deepEqual(await replica.services.operations.running(), [
        { tenant: "acme", id: name.slice("operations/".length), owner: suite.gw.services.instanceId },
      ]);
      const cancel = await replica.call("operator", "POST", `/v1/${name}/cancel`);
      assert.equal(cancel.json<OperationJson>().metadata.state, "CANCELLING");
      release();
      const done = await suite.gw.waitForOperation("operator", name);
      assert.equal(done.metadata.state, "CANCELLED", JSON.stringify(done.error));
      assert.equal((await suite.gw.call("operator", "GET", "/v1/vms/cancelled-1")).statusCode, 404);
      assert.ok(
        calls().some((c) => c.startsWith("DeleteController")),
        `the controller was deleted again: ${JSON.stringify(calls())}`,
      );
    } finally {
      suite.host.holds.delete("CreateController");
      release();
      await replica.close();
    }
  });
});
