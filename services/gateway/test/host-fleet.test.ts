// Hosts in a fleet (issue 16 points 3 and 4): a host joins by itself with its own credential and
// keeps a lease; a host that stops refreshing, or whose services are not SERVING, gets no new VMs;
// capacity is what the host declares; placement stays exact with three replicas racing on etcd.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import pino from "pino";
import {
  etcdTestsSkipReason,
  openStore,
  startEtcdForTests,
  type EtcdTestServer,
  type Store,
} from "@vplane/store";
import { AccessTokens } from "../src/access/access-tokens.js";
import { registryKeys } from "../src/registry/registry-keys.js";
import { HostAgent } from "../src/hosts/host-agent.js";
import { hostAgentOptionsSpec } from "../src/hosts/host-agent-options.js";
import { loadConfig } from "@vplane/service-kit";
import { FakeHost } from "./support/fake-host.js";
import { startTestGateway, type OperationJson, type TestGateway } from "./support/test-gateway.js";

const MIB = 1024 * 1024;
const spec = (name: string, host?: string) => ({
  name,
  vcpus: 1,
  memoryBytes: MIB,
  interruptController: { mode: "xics" },
  ...(host ? { placement: { host } } : {}),
});
const declaration = (host: FakeHost, vms = 8, vcpus = 64, smmus = 64) => ({
  addresses: host.addresses,
  capacity: { vcpus, memoryBytes: 1024 * MIB, vms, smmus },
  agentVersion: "test",
});

interface HostJson {
  name: string;
  source: string;
  capacity: { vcpus: number; memoryBytes: number; vms?: number; smmus?: number };
  usage: { vms: number; smmus?: number };
  availability: { state: string; reason?: string; message?: string };
  lease?: { renewTime: string; expireTime: string };
}

describe("hosts join by themselves and keep a lease", () => {
  let gw: TestGateway;
  let h1: FakeHost;
  let h2: FakeHost;
  let hostToken: (host: string) => string;
  before(async () => {
    gw = await startTestGateway({ fleet: { hostLeaseMs: 3_000, hostProbeMs: 200 } });
    [h1, h2] = await Promise.all([FakeHost.start(), FakeHost.start()]);
    hostToken = (host) => gw.tokens.issue({ tenant: "system", role: "host", host }).token;
  });
  after(async () => {
    await gw.close();
    await Promise.all([h1.stop(), h2.stop()]);
  });
  const joinHost = (token: string, host: string, body: unknown) =>
    gw.app.inject({
      method: "POST",
      url: `/v1/hosts/${host}:join`,
      headers: { authorization: `Bearer ${token}` },
      payload: body as Record<string, unknown>,
    });
  const hostOf = async (name: string) =>
    (await gw.call("admin", "GET", `/v1/hosts/${name}`)).json<HostJson>();

  it("a host credential registers its host with the capacity it declares and a lease; the host shows AVAILABLE", async () => {
    const answer = await joinHost(hostToken("j1"), "j1", declaration(h1));
    assert.equal(answer.statusCode, 200, answer.body);
    const body = answer.json<{ host: HostJson; lease: { ttlMs: number }; heartbeatMs: number }>();
    assert.equal(body.host.source, "agent");
    assert.deepEqual(body.host.capacity, { vcpus: 64, memoryBytes: 1024 * MIB, vms: 8, smmus: 64 });
    assert.deepEqual([body.lease.ttlMs, body.heartbeatMs], [3000, 1000]);
    const shown = await hostOf("j1");
    assert.equal(shown.availability.state, "AVAILABLE");
    assert.ok(shown.lease && Date.parse(shown.lease.expireTime) - Date.parse(shown.lease.renewTime) === 3000);
  });

  it("a credential joins only the host it names; a viewer may not join; an admin may; a host token reaches nothing else", async () => {
    const other = await joinHost(hostToken("j1"), "j2", declaration(h2));
    assert.equal(other.statusCode, 403);
    assert.equal(other.json<{ error: { reason: string } }>().error.reason, "HOST_CREDENTIAL_MISMATCH");
    const viewer = await joinHost(gw.token.viewer, "j2", declaration(h2));
    assert.equal(viewer.json<{ error: { reason: string } }>().error.reason, "ROLE_NOT_ALLOWED");
    assert.equal((await joinHost(gw.token.admin, "j2", declaration(h2))).statusCode, 200);
    const token = hostToken("j1");
    for (const [method, url] of [
      ["GET", "/v1/vms"],
      ["GET", "/v1/hosts"],
      ["POST", "/v1/vms"],
    ] as const) {
      const answer = await gw.app.inject({ method, url, headers: { authorization: `Bearer ${token}` } });
      assert.equal(answer.statusCode, 403, `${method} ${url}`);
    }
    assert.throws(() => gw.tokens.issue({ tenant: "system", role: "host" }), /needs the host id/);
    assert.throws(() => gw.tokens.issue({ tenant: "acme", role: "viewer", host: "j1" }), /only a host token/);
  });

  it("a host whose lease lapses is UNAVAILABLE (LEASE_EXPIRED) and gets no new VMs; joining again brings it back", async () => {
    await joinHost(hostToken("j1"), "j1", declaration(h1));
    await joinHost(gw.token.admin, "j2", declaration(h2));
    // j1's agent renewed nothing for 10 s: its lease, as the registry keeps it, lapsed long ago.
    const lease = (await gw.services.leases.get("j1"))!;
    await gw.services.store.put(registryKeys.hostLease("j1"), { ...lease, renewedAtMs: Date.now() - 10_000 });
    const lapsed = await hostOf("j1");
    assert.deepEqual(
      [lapsed.availability.state, lapsed.availability.reason],
      ["UNAVAILABLE", "LEASE_EXPIRED"],
    );
    const refused = await gw.call("operator", "POST", "/v1/vms", spec("lease-1", "j1"));
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json<{ error: { reason: string } }>().error.reason, "HOST_UNAVAILABLE");
    const placed = await gw.call("operator", "POST", "/v1/vms", spec("lease-2"));
    assert.equal(placed.statusCode, 202, placed.body);
    await gw.waitForOperation("operator", placed.json<OperationJson>().name);
    assert.equal((await gw.call("viewer", "GET", "/v1/vms/lease-2")).json<{ host: string }>().host, "j2");
    await joinHost(hostToken("j1"), "j1", declaration(h1));
    assert.equal((await hostOf("j1")).availability.state, "AVAILABLE");
    const back = await gw.call("operator", "POST", "/v1/vms", spec("lease-3", "j1"));
    assert.equal(back.statusCode, 202, back.body);
    await gw.waitForOperation("operator", back.json<OperationJson>().name);
  });

  it("the capacity a host declares is enforced: no more VMs than it says its services hold", async () => {
    const small = await FakeHost.start();
    const created: string[] = [];
    try {
      await joinHost(hostToken("small"), "small", declaration(small, 2));
      for (const name of ["cap-1", "cap-2"]) {
        const answer = await gw.call("operator", "POST", "/v1/vms", spec(name, "small"));
        assert.equal(answer.statusCode, 202, answer.body);
        created.push(name);
        await gw.waitForOperation("operator", answer.json<OperationJson>().name);
      }
      const full = await gw.call("operator", "POST", "/v1/vms", spec("cap-3", "small"));
      assert.equal(full.statusCode, 429, full.body);
      assert.equal(full.json<{ error: { reason: string } }>().error.reason, "HOST_CAPACITY_EXCEEDED");
    } finally {
      for (const name of created) {
        const deleted = await gw.call("operator", "DELETE", `/v1/vms/${name}`);
        await gw.waitForOperation("operator", deleted.json<OperationJson>().name);
      }
      await small.stop();
    }
  });

  it("the host agent joins through the first gateway that answers, declares its services' max_controllers and max_smmus, and renews", async () => {
    await gw.app.listen({ host: "127.0.0.1", port: 0 });
    const address = gw.app.server.address() as { port: number };
    const folder = mkdtempSync(join(tmpdir(), "vplane-agent-"));
    // The Kubernetes form: a folder with one credential per host id (a Secret, a key per node).
    writeFileSync(join(folder, "agent-1"), `${hostToken("agent-1")}\n`);
    writeFileSync(join(folder, "agent-2"), `${hostToken("agent-2")}\n`);
    h2.maxControllers = 5;
    h2.maxSmmus = 7;
    const config = loadConfig(hostAgentOptionsSpec, {
      argv: [],
      env: {
        VPLANE_HOST_NAME: "agent-1.example.internal",
        // The first gateway does not exist: the agent moves on to the next.
        VPLANE_HOST_GATEWAY_URLS: `http://127.0.0.1:1,http://127.0.0.1:${address.port}`,
        VPLANE_HOST_TOKEN_FILE: folder,
        VPLANE_HOST_SERVICES: [h2.address, h2.address, h2.address].join(","),
        VPLANE_HOST_VCPUS: "16",
        VPLANE_HOST_MEMORY_BYTES: String(512 * MIB),
      },
    });
    const agent = new HostAgent(config, credentials.createInsecure(), pino({ level: "silent" }));
    try {
      await agent.start();
      assert.equal(agent.current.t, "joined");
      const joined = await hostOf("agent-1");
      assert.deepEqual(joined.capacity, { vcpus: 16, memoryBytes: 512 * MIB, vms: 5, smmus: 7 });
      const first = Date.parse(joined.lease!.renewTime);
      // The gateway asks for a heartbeat every third of the lease (1 s): the lease never lapses.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const renewed = await hostOf("agent-1");
      assert.ok(Date.parse(renewed.lease!.renewTime) > first);
      assert.equal(renewed.availability.state, "AVAILABLE");
    } finally {
      agent.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe("placement counts the SMMUs a host declares its iommu holds", () => {
  let gw: TestGateway;
  let few: FakeHost;
  let many: FakeHost;
  before(async () => {
    gw = await startTestGateway();
    [few, many] = await Promise.all([FakeHost.start(), FakeHost.start()]);
    const join = async (host: FakeHost, name: string, body: unknown) => {
      const token = gw.tokens.issue({ tenant: "system", role: "host", host: name }).token;
      const answer = await gw.app.inject({
        method: "POST",
        url: `/v1/hosts/${name}:join`,
        headers: { authorization: `Bearer ${token}` },
        payload: body as Record<string, unknown>,
      });
      assert.equal(answer.statusCode, 200, answer.body);
    };
    // "few" has the most room by vCPUs (placement's first choice) but one SMMU; "many" 64.
    await join(few, "few", declaration(few, 8, 64, 1));
    await join(many, "many", declaration(many, 8, 8, 64));
  });
  after(async () => {
    await gw.close();
    await Promise.all([few.stop(), many.stop()]);
  });
  const withSmmu = (name: string, host?: string) => ({
    ...spec(name, host),
    iommu: { smmus: [{ name: "s0" }] },
  });
  const placedOn = (op: OperationJson) => (op.response as { host: string }).host;
  const usageOf = async (name: string) =>
    (await gw.call("admin", "GET", `/v1/hosts/${name}`)).json<HostJson>().usage;

  it("a host whose SMMUs are all taken gets no VM with an SMMU (another host does), still VMs without; a delete gives its SMMU back", async () => {
    const first = await gw.createVm("operator", withSmmu("smmu-1", "few"));
    assert.equal(placedOn(first), "few");
    assert.equal((await usageOf("few")).smmus, 1);
    // Without the SMMU counted, "few" (the most room) took it and its iommu refused the SMMU.
    assert.equal(placedOn(await gw.createVm("operator", withSmmu("smmu-2"))), "many");
    assert.equal(placedOn(await gw.createVm("operator", spec("no-smmu"))), "few");
    const refused = await gw.call("operator", "POST", "/v1/vms", withSmmu("smmu-3", "few"));
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal(refused.json<{ error: { reason: string } }>().error.reason, "HOST_CAPACITY_EXCEEDED");
    assert.deepEqual(
      [(await usageOf("few")).vms, (await usageOf("few")).smmus, (await usageOf("many")).smmus],
      [2, 1, 1],
    );

    const deleted = await gw.call("operator", "DELETE", "/v1/vms/smmu-1");
    await gw.waitForOperation("operator", deleted.json<OperationJson>().name);
    assert.equal((await usageOf("few")).smmus, 0);
    assert.equal(placedOn(await gw.createVm("operator", withSmmu("smmu-4", "few"))), "few");
  });
});

describe("placement skips hosts whose services are not SERVING", () => {
  let gw: TestGateway;
  let up: FakeHost;
  let down: FakeHost;
  before(async () => {
    gw = await startTestGateway({ fleet: { hostProbeMs: 200 } });
    [up, down] = await Promise.all([FakeHost.start(), FakeHost.start()]);
    await gw.services.hosts.register({ name: "up", addresses: up.addresses }, "api");
    await gw.services.hosts.register({ name: "down", addresses: down.addresses }, "api");
    await down.stop();
  });
  after(async () => {
    await gw.close();
    await up.stop();
  });

  it("new VMs go to the serving host; naming the other answers 503 HOST_UNAVAILABLE with what its services said", async () => {
    for (const name of ["health-1", "health-2", "health-3"]) {
      const answer = await gw.call("operator", "POST", "/v1/vms", spec(name));
      assert.equal(answer.statusCode, 202, answer.body);
      await gw.waitForOperation("operator", answer.json<OperationJson>().name);
      assert.equal((await gw.call("viewer", "GET", `/v1/vms/${name}`)).json<{ host: string }>().host, "up");
    }
    const named = await gw.call("operator", "POST", "/v1/vms", spec("health-4", "down"));
    assert.equal(named.statusCode, 503);
    const error = named.json<{ error: { reason: string; message: string } }>().error;
    assert.equal(error.reason, "HOST_UNAVAILABLE");
    assert.match(error.message, /interrupt-controller UNREACHABLE, iommu UNREACHABLE, migration UNREACHABLE/);
    const shown = (await gw.call("admin", "GET", "/v1/hosts/down")).json<HostJson>();
    assert.deepEqual(
      [shown.availability.state, shown.availability.reason],
      ["UNAVAILABLE", "SERVICES_NOT_SERVING"],
    );
  });

  it("with no host serving, a create answers 503 NO_HOST_AVAILABLE (retryable), not a failed operation", async () => {
    await up.stop();
    // Past the time a healthy answer is trusted (three probe intervals), the host is asked again.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const answer = await gw.call("operator", "POST", "/v1/vms", spec("health-5"));
    assert.equal(answer.statusCode, 503, answer.body);
    assert.equal(answer.json<{ error: { reason: string } }>().error.reason, "NO_HOST_AVAILABLE");
    assert.equal((await gw.call("viewer", "GET", "/v1/vms/health-5")).statusCode, 404);
    up = await FakeHost.start(); // for after()
  });
});

const skip = etcdTestsSkipReason();

describe("placement under compare-and-swap with three replicas racing on etcd", { skip }, () => {
  let etcd: EtcdTestServer;
  let stores: Store[];
  let replicas: TestGateway[];
  let hosts: FakeHost[];
  before(async () => {
    etcd = await startEtcdForTests();
    hosts = await Promise.all([FakeHost.start(), FakeHost.start()]);
    stores = [0, 1, 2].map(() => openStore(etcd.storeUrl("race/")));
    const tokens = AccessTokens.inMemory();
    replicas = [];
    for (const store of stores) replicas.push(await startTestGateway({ store, tokens }));
    const admin = replicas[0]!;
    for (const [i, host] of hosts.entries()) {
      const answer = await admin.call("admin", "POST", `/v1/hosts/race-${i}:join`, declaration(host, 12));
      assert.equal(answer.statusCode, 200, answer.body);
    }
  });
  after(async () => {
    for (const replica of replicas ?? []) await replica.close();
    await Promise.all(stores?.map((s) => s.close()) ?? []);
    await Promise.all(hosts?.map((h) => h.stop()) ?? []);
    await etcd?.stop();
  });

  it("40 creates over 3 replicas for 24 slots: exactly 24 placed, none over a host's capacity, usage equal to the VMs", async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        replicas[i % 3]!.call("operator", "POST", "/v1/vms", spec(`race-${String(i).padStart(2, "0")}`)),
      ),
    );
    const statuses = answers.map((a) => a.statusCode);
    assert.equal(statuses.filter((s) => s === 202).length, 24, statuses.join(","));
    assert.ok(
      answers
        .filter((a) => a.statusCode !== 202)
        .every((a) => a.json<{ error: { reason: string } }>().error.reason === "NO_HOST_WITH_CAPACITY"),
    );
    await Promise.all(
      answers
        .filter((a) => a.statusCode === 202)
        .map((a, i) => replicas[i % 3]!.waitForOperation("operator", a.json<OperationJson>().name, 30_000)),
    );
    const listed = (await replicas[1]!.call("viewer", "GET", "/v1/vms?pageSize=1000")).json<{
      vms: { host: string; state: string }[];
    }>().vms;
    assert.equal(listed.length, 24);
    assert.ok(listed.every((vm) => vm.state === "READY"));
    for (const [i, host] of hosts.entries()) {
      const name = `race-${i}`;
      const placed = listed.filter((vm) => vm.host === name).length;
      const usage = (await replicas[2]!.services.hosts.usageOf(name)).value;
      assert.deepEqual([placed, usage.vms, usage.vcpus], [12, 12, 12], name);
      assert.equal(host.controllers.size, 12);
    }
  });
});
