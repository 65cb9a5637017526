import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openStore } from "@vplane/store";
import { startGatewayWithHost, startTestGateway, type TestGateway } from "./support/test-gateway.js";

const vmBody = { name: "vm-1", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } };

describe("gateway skeleton: health, OpenAPI, one error shape, limits, metrics", () => {
  let gw: TestGateway;
  let stop: () => Promise<void>;
  before(async () => {
    ({ gw, close: stop } = await startGatewayWithHost({ bodyLimitBytes: 4096 }));
  });
  after(() => stop());

  it("GET /healthz answers 200 without a token (liveness) and stamps x-request-id", async () => {
    const response = await gw.call(null, "GET", "/healthz");
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: "ok" });
    assert.match(String(response.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
  });

  it("echoes a caller's x-request-id", async () => {
    const response = await gw.call(null, "GET", "/healthz", undefined, { "x-request-id": "req-abc-1" });
    assert.equal(response.headers["x-request-id"], "req-abc-1");
  });

  it("GET /readyz is ready when every registered host's services are SERVING", async () => {
    const response = await gw.call(null, "GET", "/readyz");
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json<{
      status: string;
      hosts: { name: string; services: Record<string, string> }[];
    }>();
    assert.equal(body.status, "ready");
    assert.deepEqual(body.hosts, [
      { name: "h1", services: { interruptController: "SERVING", iommu: "SERVING", migration: "SERVING" } },
    ]);
  });

  it("GET /readyz stays ready when a host's services are unreachable, and names that host (a host's fault is not the replica's)", async () => {
    await gw.services.hosts.register(
      {
        name: "dead",
        addresses: { interruptController: "127.0.0.1:1", iommu: "127.0.0.1:1", migration: "127.0.0.1:1" },
      },
      "api",
    );
    try {
      const response = await gw.call(null, "GET", "/readyz");
      assert.equal(response.statusCode, 200);
      const body = response.json<{
        status: string;
        hosts: { name: string; services: Record<string, string> }[];
      }>();
      assert.equal(body.status, "ready");
      assert.equal(body.hosts.find((h) => h.name === "dead")?.services.iommu, "UNREACHABLE");
    } finally {
      await gw.services.hosts.remove("dead");
    }
  });

  it("GET /readyz answers 503 when the registry does not answer (the replica cannot serve)", async () => {
    const store = openStore("sqlite::memory:");
    const lonely = await startTestGateway({ store });
    try {
      await store.close();
      const response = await lonely.call(null, "GET", "/readyz");
      assert.equal(response.statusCode, 503, response.body);
      const body = response.json<{ status: string; registry: { ok: boolean } }>();
      assert.deepEqual([body.status, body.registry.ok], ["not ready", false]);
    } finally {
      await lonely.close();
    }
  });

  it("serves an OpenAPI 3 document derived from the route schemas, and the UI at /docs", async () => {
    const response = await gw.call(null, "GET", "/openapi.json");
    assert.equal(response.statusCode, 200);
    const doc = response.json<{
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { required: string[] }> };
    }>();
    assert.match(doc.openapi, /^3\./);
    for (const path of [
      "/v1/vms",
      "/v1/vms/{vm}",
      "/v1/hosts",
      "/v1/hosts/{host}",
      "/v1/operations/{operation}",
      "/v1/operations/{operation}/cancel",
    ]) {
      assert.ok(doc.paths[path], `OpenAPI lists ${path}`);
    }
    const create = doc.paths["/v1/vms"]!["post"] as {
      requestBody: { content: Record<string, { schema: { $ref: string } }> };
    };
    // The body is a named component schema (client generators name its type after it).
    assert.equal(create.requestBody.content["application/json"]!.schema.$ref, "#/components/schemas/VmSpec");
    assert.deepEqual(doc.components.schemas["VmSpec"]!.required.sort(), [
      "interruptController",
      "memoryBytes",
      "name",
      "vcpus",
    ]);
    const ui = await gw.call(null, "GET", "/docs/");
    assert.equal(ui.statusCode, 200);
    assert.match(ui.body, /swagger/i);
  });

  it("an unknown route is NOT_FOUND in the one error shape", async () => {
    const response = await gw.call("admin", "GET", "/v1/nothing-here");
    assert.equal(response.statusCode, 404);
    assert.deepEqual(response.json(), {
      error: {
        code: "NOT_FOUND",
        reason: "ROUTE_NOT_FOUND",
        message: "no route GET /v1/nothing-here",
        details: {},
      },
    });
  });

  it("schema rejections are INVALID_ARGUMENT (400) naming the field: wrong type, missing, extra, pattern", async () => {
    const cases: [unknown, string][] = [
      [{ ...vmBody, vcpus: "2" }, "vcpus"],
      [{ ...vmBody, vcpus: 0 }, "vcpus"],
      [{ vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } }, "name"],
      [{ ...vmBody, color: "blue" }, "color"],
      [{ ...vmBody, name: "Bad_Name" }, "name"],
      [{ ...vmBody, memoryBytes: (1 << 30) + 1 }, "memoryBytes"],
      [{ ...vmBody, interruptController: { mode: "apic" } }, "interruptController.mode"],
      [
        { ...vmBody, iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: -1, virtualSid: 0 }] }] } },
        "iommu.smmus[0].devices[0].physicalSid",
      ],
    ];
    for (const [body, field] of cases) {
      const response = await gw.call("operator", "POST", "/v1/vms", body);
      assert.equal(response.statusCode, 400, `${JSON.stringify(body)} → ${response.body}`);
      const error = response.json<{ error: { code: string; reason: string; details: { field: string } } }>()
        .error;
      assert.equal(error.code, "INVALID_ARGUMENT");
      assert.equal(error.reason, "SCHEMA_VALIDATION_FAILED");
      assert.equal(error.details.field, field, response.body);
    }
  });

  it("path and query parameters are validated too", async () => {
    const bad = await gw.call("viewer", "GET", "/v1/vms/Not_An_Id");
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json<{ error: { details: { field: string } } }>().error.details.field, "vm");
    const page = await gw.call("viewer", "GET", "/v1/vms?pageSize=5000");
    assert.equal(page.statusCode, 400);
    assert.equal(page.json<{ error: { details: { field: string } } }>().error.details.field, "pageSize");
  });

  it("malformed JSON is INVALID_ARGUMENT MALFORMED_JSON; a body over the limit is 413 RESOURCE_EXHAUSTED", async () => {
    const malformed = await gw.call("operator", "POST", "/v1/vms", "{not json", {
      "content-type": "application/json",
    });
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json<{ error: { reason: string } }>().error.reason, "MALFORMED_JSON");
    const huge = await gw.call("operator", "POST", "/v1/vms", { ...vmBody, pad: "x".repeat(8192) });
    assert.equal(huge.statusCode, 413);
    assert.deepEqual(
      [
        huge.json<{ error: { code: string; reason: string } }>().error.code,
        huge.json<{ error: { reason: string } }>().error.reason,
      ],
      ["RESOURCE_EXHAUSTED", "REQUEST_BODY_TOO_LARGE"],
    );
  });

  it("/metrics exposes request counts by route, RPC outcomes and VM counts in Prometheus format", async () => {
    await gw.call(null, "GET", "/healthz");
    await gw.call("admin", "GET", "/v1/hosts/h1"); // probes the services: GetCapabilities RPCs
    const response = await gw.call(null, "GET", "/metrics");
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers["content-type"]), /text\/plain/);
    assert.match(
      response.body,
      /vplane_gateway_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/,
    );
    assert.match(
      response.body,
      /vplane_gateway_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/healthz"\}/,
    );
    assert.match(
      response.body,
      /vplane_gateway_rpc_calls_total\{service="interrupt-controller",method="GetCapabilities",code="OK"\} \d+/,
    );
    assert.match(response.body, /vplane_gateway_vms\{state="READY"\} 0/);
  });
});

describe("rate limit", () => {
  it("answers 429 RESOURCE_EXHAUSTED in the error shape past the per-caller limit", async () => {
    const gw = await startTestGateway({ rateLimitPerSecond: 5 });
    try {
      const statuses: number[] = [];
      let limited;
      for (let i = 0; i < 8; i++) {
        const response = await gw.call("viewer", "GET", "/v1/vms");
        statuses.push(response.statusCode);
        if (response.statusCode === 429) limited = response;
      }
      assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200]);
      assert.ok(limited, `statuses ${statuses.join(",")}`);
      assert.equal(
        limited.json<{ error: { code: string; reason: string } }>().error.code,
        "RESOURCE_EXHAUSTED",
      );
      assert.equal(limited.json<{ error: { reason: string } }>().error.reason, "RATE_LIMITED");
      // Another caller (another token) has its own budget.
      assert.equal((await gw.call("other", "GET", "/v1/vms")).statusCode, 200);
    } finally {
      await gw.close();
    }
  });
});
