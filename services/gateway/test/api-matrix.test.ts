// Idempotent retries and the tenant matrix: every VM and operation route, called with another
// tenant's token, answers exactly as for a VM or operation that does not exist.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { IDEMPOTENCY_RETENTION_MS, sweepIdempotencyKeys } from "../src/http/idempotency.js";
import type { FakeHost } from "./support/fake-host.js";
import { startGatewayWithHost, type OperationJson, type TestGateway } from "./support/test-gateway.js";

const spec = (name: string, vcpus = 2) => ({
  name,
  vcpus,
  memoryBytes: 1 << 30,
  interruptController: { mode: "dual" },
});

describe("Idempotency-Key on POST", () => {
  let gw: TestGateway;
  let host: FakeHost;
  let stop: () => Promise<void>;
  before(async () => {
    ({ gw, host, close: stop } = await startGatewayWithHost());
  });
  after(() => stop());

  it("a retry returns the first operation, marked as replayed, and never makes a second VM", async () => {
    const headers = { "idempotency-key": "create-idem-1" };
    const first = await gw.call("operator", "POST", "/v1/vms", spec("idem-1"), headers);
    assert.equal(first.statusCode, 202);
    await gw.waitForOperation("operator", first.json<OperationJson>().name);
    const retry = await gw.call("operator", "POST", "/v1/vms", spec("idem-1"), headers);
    assert.equal(retry.statusCode, 202);
    assert.equal(retry.headers["idempotent-replayed"], "true");
    assert.deepEqual(retry.json(), first.json());
    const creates = host.calls.filter((c) => c.startsWith("CreateController")).length;
    assert.equal(creates, 1);
    // Without the key the same body is a new request: 409, the VM exists.
    assert.equal((await gw.call("operator", "POST", "/v1/vms", spec("idem-1"))).statusCode, 409);
  });

  it("concurrent requests with one key run once and all answer the same operation", async () => {
    const headers = { "idempotency-key": "create-idem-2" };
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => gw.call("operator", "POST", "/v1/vms", spec("idem-2"), headers)),
    );
    assert.deepEqual(
      answers.map((a) => a.statusCode),
      [202, 202, 202, 202, 202],
    );
    assert.equal(new Set(answers.map((a) => a.json<OperationJson>().name)).size, 1);
    await gw.waitForOperation("operator", answers[0]!.json<OperationJson>().name);
    const listed = (await gw.call("viewer", "GET", "/v1/vms")).json<{ vms: { name: string }[] }>();
    assert.equal(listed.vms.filter((v) => v.name === "idem-2").length, 1);
  });

  it("the same key with a different request is refused; the stored answer stays", async () => {
    const headers = { "idempotency-key": "create-idem-3" };
    const first = await gw.call("operator", "POST", "/v1/vms", spec("idem-3"), headers);
    assert.equal(first.statusCode, 202);
    const other = await gw.call("operator", "POST", "/v1/vms", spec("idem-3", 4), headers);
    assert.equal(other.statusCode, 400);
    assert.equal(other.json<{ error: { reason: string } }>().error.reason, "IDEMPOTENCY_KEY_REUSED");
    await gw.waitForOperation("operator", first.json<OperationJson>().name);
  });

  it("an error answer is replayed too (4xx), and keys are per tenant", async () => {
    const headers = { "idempotency-key": "shared-key" };
    const taken = await gw.call("operator", "POST", "/v1/vms", spec("idem-1"), headers);
    assert.equal(taken.statusCode, 409);
    const again = await gw.call("operator", "POST", "/v1/vms", spec("idem-1"), headers);
    assert.equal(again.statusCode, 409);
    assert.equal(again.headers["idempotent-replayed"], "true");
    // Tenant globex uses the same key for its own VM: independent.
    const theirs = await gw.call("other", "POST", "/v1/vms", spec("idem-1"), headers);
    assert.equal(theirs.statusCode, 202);
    await gw.waitForOperation("other", theirs.json<OperationJson>().name);
  });

  it("the key also covers host registration", async () => {
    const body = { name: "h2", addresses: host.addresses };
    const headers = { "idempotency-key": "host-h2" };
    const first = await gw.call("admin", "POST", "/v1/hosts", body, headers);
    const retry = await gw.call("admin", "POST", "/v1/hosts", body, headers);
    assert.deepEqual([first.statusCode, retry.statusCode], [201, 201]);
    assert.deepEqual(retry.json(), first.json());
  });

  it("a malformed key is INVALID_ARGUMENT naming the header", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", spec("idem-9"), {
      "idempotency-key": "has space",
    });
    assert.equal(response.statusCode, 400);
    assert.equal(
      response.json<{ error: { details: { field: string } } }>().error.details.field,
      "Idempotency-Key",
    );
  });

  it("answers are kept 24 hours: then the key runs afresh, and the sweep deletes only expired answers", async () => {
    const headers = { "idempotency-key": "aged-key" };
    const first = await gw.call("operator", "POST", "/v1/vms", spec("idem-aged"), headers);
    assert.equal(first.statusCode, 202);
    await gw.waitForOperation("operator", first.json<OperationJson>().name);
    // Age the stored answer past the retention, as 24 hours would.
    const { store } = gw.services;
    const [aged] = (await store.list("idempotency/acme/")).entries.filter(
      (e) => (e.value as { body?: { name?: string } }).body?.name === first.json<OperationJson>().name,
    );
    const old = new Date(Date.now() - IDEMPOTENCY_RETENTION_MS - 1000).toISOString();
    await store.put(aged!.key, { ...(aged!.value as object), createTime: old });
    // A different request with the old key is no longer IDEMPOTENCY_KEY_REUSED: it runs.
    const afresh = await gw.call("operator", "POST", "/v1/vms", spec("idem-aged-2"), headers);
    assert.equal(afresh.statusCode, 202, afresh.body);
    assert.equal(afresh.headers["idempotent-replayed"], undefined);
    await gw.waitForOperation("operator", afresh.json<OperationJson>().name);
    // Its new answer is fresh: nothing to sweep now; 24 hours later, it goes.
    const kept = (await store.list("idempotency/")).entries.length;
    assert.equal(await sweepIdempotencyKeys(store), 0);
    assert.equal(await sweepIdempotencyKeys(store, Date.now() + IDEMPOTENCY_RETENTION_MS + 1000), kept);
    assert.deepEqual((await store.list("idempotency/")).entries, []);
  });
});

describe("tenant matrix: another tenant's VM answers exactly like a missing one", () => {
  let gw: TestGateway;
  let operation: string;
  let stop: () => Promise<void>;
  before(async () => {
    ({ gw, close: stop } = await startGatewayWithHost());
    const created = await gw.call("operator", "POST", "/v1/vms", spec("mine"));
    operation = created.json<OperationJson>().name;
    await gw.waitForOperation("operator", operation);
  });
  after(() => stop());

  const vmRoutes = (vm: string) =>
    [
      ["GET", `/v1/vms/${vm}`, undefined],
      ["DELETE", `/v1/vms/${vm}`, undefined],
      ["POST", `/v1/vms/${vm}:migrate`, { destinationHost: "h1" }],
    ] as const;

  it("every VM route with tenant globex's token on acme's VM → the same 404 as for a VM that does not exist", async () => {
    for (const who of ["other", "otherAdmin"] as const) {
      const foreign = vmRoutes("mine");
      const missing = vmRoutes("absent-vm");
      for (const [i, [method, url, body]] of foreign.entries()) {
        const theirs = await gw.call(who, method, url, body);
        const [, missingUrl, missingBody] = missing[i]!;
        const none = await gw.call(who, method, missingUrl, missingBody);
        assert.equal(theirs.statusCode, 404, `${who} ${method} ${url}: ${theirs.body}`);
        assert.equal(none.statusCode, 404);
        assert.deepEqual(
          theirs.json(),
          JSON.parse(none.body.replaceAll("absent-vm", "mine")),
          `${method} ${url} must not tell a foreign VM from a missing one`,
        );
      }
    }
    const listed = (await gw.call("other", "GET", "/v1/vms")).json<{ vms: unknown[] }>();
    assert.deepEqual(listed.vms, []);
    assert.equal(
      (await gw.call("viewer", "GET", "/v1/vms/mine")).statusCode,
      200,
      "its own tenant still sees it",
    );
  });

  it("every operation route with another tenant's token → 404 like a missing operation", async () => {
    const id = operation.slice("operations/".length);
    const missingId = "op-00000000000000000000";
    for (const [method, suffix] of [
      ["GET", ""],
      ["POST", "/cancel"],
      ["GET", "/events"],
    ] as const) {
      const theirs = await gw.call("other", method, `/v1/operations/${id}${suffix}`);
      const none = await gw.call("other", method, `/v1/operations/${missingId}${suffix}`);
      assert.equal(theirs.statusCode, 404, `${method} ${suffix}`);
      assert.deepEqual(theirs.json(), JSON.parse(none.body.replaceAll(missingId, id)));
    }
    const listed = (await gw.call("other", "GET", "/v1/operations")).json<{ operations: unknown[] }>();
    assert.equal(listed.operations.filter((o) => (o as { name: string }).name === operation).length, 0);
  });

  it("a viewer of the owning tenant can read but not write any VM route", async () => {
    for (const [method, url, body] of vmRoutes("mine")) {
      const response = await gw.call("viewer", method, url, body);
      assert.equal(response.statusCode, method === "GET" ? 200 : 403, `${method} ${url}`);
    }
  });
});
