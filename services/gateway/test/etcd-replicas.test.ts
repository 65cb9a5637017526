// Two gateway replicas sharing one registry in a real etcd (started by the test on loopback):
// concurrent creates of the same VM store exactly one; of different VMs lose none; the hosts'
// usage counts every VM once. Without etcd on PATH this suite is skipped loudly (CI: fails).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  etcdTestsSkipReason,
  openStore,
  startEtcdForTests,
  type EtcdTestServer,
  type Store,
} from "@vplane/store";
import { AccessTokens } from "../src/access/access-tokens.js";
import { FakeHost } from "./support/fake-host.js";
import { startTestGateway, type OperationJson, type TestGateway } from "./support/test-gateway.js";

const skip = etcdTestsSkipReason();
const spec = (name: string) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xics" },
});

describe("two gateways on one etcd registry", { skip }, () => {
  let etcd: EtcdTestServer;
  let host: FakeHost;
  let stores: Store[];
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    etcd = await startEtcdForTests();
    host = await FakeHost.start();
    host.delayMs = 5;
    stores = [openStore(etcd.storeUrl("gw/")), openStore(etcd.storeUrl("gw/"))];
    const tokens = AccessTokens.inMemory();
    a = await startTestGateway({ store: stores[0]!, tokens });
    b = await startTestGateway({ store: stores[1]!, tokens });
    // Both run, so both beat (as startGateway's operation recovery does): a replica without a
    // heartbeat counts as stopped, and another takes over the Idempotency-Keys it holds.
    for (const gw of [a, b]) await gw.services.heartbeats.beat(gw.services.instanceId);
    // One tokens object: each gateway's tokens (tenant acme for both) are accepted by both.
    await a.services.hosts.register(
      { name: "h1", addresses: host.addresses, capacity: { vcpus: 1000, memoryBytes: 0 } },
      "api",
    );
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await Promise.all(stores?.map((s) => s.close()) ?? []);
    await host?.stop();
    await etcd?.stop();
  });

  it("the same VM created concurrently through both replicas exists once, on the host once", async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).call("operator", "POST", "/v1/vms", spec("same-vm")),
      ),
    );
    const statuses = answers.map((r) => r.statusCode).sort();
    assert.deepEqual(statuses, [202, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    const winner = answers.find((r) => r.statusCode === 202)!.json<OperationJson>();
    const done = await b.waitForOperation("operator", winner.name);
    assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
    assert.equal(host.calls.filter((c) => c.startsWith("CreateController")).length, 1);
  });

  it("40 different VMs created concurrently through both replicas: none lost, none duplicated, usage exact", async () => {
    const names = Array.from({ length: 40 }, (_, i) => `vm-${String(i).padStart(2, "0")}`);
    const answers = await Promise.all(
      names.map((name, i) => (i % 2 ? a : b).call("operator", "POST", "/v1/vms", spec(name))),
    );
    const refused = answers.filter((r) => r.statusCode !== 202).map((r) => `${r.statusCode} ${r.body}`);
    assert.deepEqual(refused, []);
    await Promise.all(
      answers.map((r, i) =>
        (i % 2 ? b : a).waitForOperation("operator", r.json<OperationJson>().name, 30_000),
      ),
    );
    for (const gw of [a, b]) {
      const listed = (await gw.call("viewer", "GET", "/v1/vms?pageSize=1000")).json<{
        vms: { name: string; state: string }[];
      }>();
      const mine = listed.vms.filter((v) => v.name.startsWith("vm-"));
      assert.deepEqual(
        mine.map((v) => v.name),
        names,
      );
      assert.ok(mine.every((v) => v.state === "READY"));
    }
    const usage = (await a.services.hosts.usageOf("h1")).value;
    assert.deepEqual(usage, { vcpus: 41, memoryBytes: 41 << 20, vms: 41, smmus: 0 });
    assert.equal(host.controllers.size, 41);
  });

  it("one Idempotency-Key sent to both replicas at once runs once", async () => {
    const headers = { "idempotency-key": "etcd-idem" };
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? a : b).call("operator", "POST", "/v1/vms", spec("idem-vm"), headers),
      ),
    );
    assert.deepEqual(
      answers.map((r) => r.statusCode),
      [202, 202, 202, 202, 202, 202],
    );
    assert.equal(new Set(answers.map((r) => r.json<OperationJson>().name)).size, 1);
    await a.waitForOperation("operator", answers[0]!.json<OperationJson>().name);
  });

  it("an operation started on one replica is read and cancelled-as-finished on the other", async () => {
    const created = await a.call("operator", "POST", "/v1/vms", spec("cross-1"));
    const name = created.json<OperationJson>().name;
    const seen = await b.waitForOperation("operator", name);
    assert.equal(seen.metadata.state, "SUCCEEDED");
    const deleted = await b.call("operator", "DELETE", "/v1/vms/cross-1");
    assert.equal(deleted.statusCode, 202);
    const gone = await a.waitForOperation("operator", deleted.json<OperationJson>().name);
    assert.equal(gone.metadata.state, "SUCCEEDED");
  });
});
