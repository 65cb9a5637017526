// Who reads an operation's record from the registry. Orchestrators poll a running operation
// (GET /v1/operations/{op}) several times a second; on etcd each read is a round on some member.
// The replica running the operation is its record's writer, so it answers from what it last
// stored while its heartbeat is current (no other replica can have taken the operation over);
// another replica reads the registry. The same holds for a watch (SSE) of the operation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Store } from "@vplane/store";
import { observedStore } from "./support/observed-store.js";
import { openSse, type SseEvent } from "./support/sse-client.js";
import { suiteGatewayOverStore, startTestGateway, type OperationJson } from "./support/test-gateway.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store that counts its reads (get) of operation records. */
const countingOperationReads = (store: Store, count: { reads: number }): Store =>
  observedStore(store, (method, args) => {
    if (method === "get" && (args[0] as string).startsWith("operations/")) count.reads++;
  });

describe("operation reads", () => {
  const count = { reads: 0 };
  const suite = suiteGatewayOverStore((store) => countingOperationReads(store, count));

  const vm = (name: string) => ({
    name,
    vcpus: 1,
    memoryBytes: 1 << 20,
    interruptController: { mode: "xive" },
  });

  /** Starts a create held at the host's CreateController; returns its operation name and release. */
  const heldCreate = async (name: string) => {
    let release!: () => void;
    suite.host.holds.set("CreateController", new Promise<void>((resolve) => (release = resolve)));
    const callsBefore = suite.host.calls.length;
    const created = await suite.gw.call("operator", "POST", "/v1/vms", vm(name));
    assert.equal(created.statusCode, 202, created.body);
    while (!suite.host.calls.slice(callsBefore).some((c) => c.startsWith("CreateController"))) await sleep(5);
    const unhold = () => {
      suite.host.holds.delete("CreateController");
      release();
    };
    const finish = async () => {
      unhold();
      return suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    };
    return { name: created.json<OperationJson>().name, unhold, finish };
  };

  it("the replica running an operation answers its GETs without reading the registry, with what the registry holds", async () => {
    const replica = await startTestGateway({ store: suite.gw.services.store, tokens: suite.gw.tokens });
    const { name, finish } = await heldCreate("polled-1");
    try {
      const { heartbeats, instanceId } = suite.gw.services;
      await heartbeats.beat(instanceId);
      count.reads = 0;
      const polls = [];
      for (let i = 0; i < 5; i++) polls.push(await suite.gw.call("operator", "GET", `/v1/${name}`));
      assert.equal(count.reads, 0, "no registry read for a GET at the running replica");
      // A heartbeat that may lapse (another replica may take the operation over): read again.
      await heartbeats.beat(instanceId, Date.now() - heartbeats.leaseMs / 2);
      polls.push(await suite.gw.call("operator", "GET", `/v1/${name}`));
      assert.equal(count.reads, 1, "a replica whose heartbeat is not current reads the registry");
      const inRegistry = (await replica.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.equal(inRegistry.metadata.state, "RUNNING");
      for (const poll of polls) {
        assert.equal(poll.statusCode, 200);
        assert.deepEqual(poll.json(), inRegistry);
      }
    } finally {
      assert.equal((await finish()).metadata.state, "SUCCEEDED");
      await replica.close();
    }
  });

  it("another replica reads the registry; a cancel through the running replica shows in its GET at once; the replica that ended it answers from the record it ended with", async () => {
    const replica = await startTestGateway({ store: suite.gw.services.store, tokens: suite.gw.tokens });
    const { name, unhold, finish } = await heldCreate("polled-2");
    await suite.gw.services.heartbeats.beat(suite.gw.services.instanceId);
    try {
      count.reads = 0;
      const elsewhere = await replica.call("operator", "GET", `/v1/${name}`);
      assert.equal(elsewhere.statusCode, 200);
      assert.equal(count.reads, 1, "a replica not running the operation reads it");
      const cancel = await suite.gw.call("operator", "POST", `/v1/${name}/cancel`);
      assert.equal(cancel.json<OperationJson>().metadata.state, "CANCELLING");
      const polled = await suite.gw.call("operator", "GET", `/v1/${name}`);
      assert.equal(polled.json<OperationJson>().metadata.state, "CANCELLING");
      assert.deepEqual(polled.json(), (await replica.call("operator", "GET", `/v1/${name}`)).json());
      assert.equal((await finish()).metadata.state, "CANCELLED");
      // Ended here: a done record never changes again, so the replica that ended it answers the
      // clients' last poll (the one that finds it done) from it too, for a few seconds.
      count.reads = 0;
      const ended = (await suite.gw.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.equal(ended.metadata.state, "CANCELLED");
      assert.equal(count.reads, 0, "the replica that ended the operation reads no registry");
      assert.deepEqual(ended, (await replica.call("operator", "GET", `/v1/${name}`)).json());
    } finally {
      unhold();
      await replica.close();
    }
  });

  it("a watch (SSE) at the running replica opens and follows the operation without reading the registry, with the events another replica's watch streams", async () => {
    const { base } = await suite.gw.listen();
    const replica = await startTestGateway({ store: suite.gw.services.store, tokens: suite.gw.tokens });
    const elsewhere = (await replica.listen()).base;
    const { name, finish } = await heldCreate("watched-1");
    const auth = { authorization: `Bearer ${suite.gw.token.viewer}` };
    try {
      const { heartbeats, instanceId } = suite.gw.services;
      await heartbeats.beat(instanceId);
      count.reads = 0;
      const stream = await openSse(`${base}/v1/${name}/events`, auth);
      assert.equal(stream.status, 200);
      const events: SseEvent[] = [(await stream.next())!];
      assert.equal(count.reads, 0, "no registry read to open a watch at the running replica");
      assert.equal((await finish()).metadata.state, "SUCCEEDED");
      for (let e = await stream.next(); e; e = await stream.next()) events.push(e);
      assert.equal(count.reads, 0, "no registry read to follow it");
      assert.equal(events.at(-1)?.event, "done");
      const other = await openSse(`${elsewhere}/v1/${name}/events`, auth);
      const fromRegistry: SseEvent[] = [];
      for (let e = await other.next(); e; e = await other.next()) fromRegistry.push(e);
      assert.deepEqual(events, fromRegistry);
    } finally {
      await replica.close();
    }
  });
});
