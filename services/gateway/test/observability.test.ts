import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeLabel } from "../src/routes/route-label.js";
import { startTestGateway } from "./support/test-gateway.js";
import { jsonLineSink } from "./support/json-line-sink.js";

describe("gateway metrics labels and process metrics", () => {
  it("labels requests with the route pattern as the OpenAPI paths write it, never a regular expression", async () => {
    const gw = await startTestGateway();
    try {
      await gw.call("admin", "POST", "/v1/vms/nosuch:migrate", { host: "h2" });
      await gw.call("admin", "GET", "/v1/vms/nosuch");
      const metrics = (await gw.call(null, "GET", "/metrics")).body;
      assert.match(
        metrics,
        /vplane_gateway_http_requests_total\{method="POST",route="\/v1\/vms\/\{vm\}:migrate",status="\d+"\} 1/,
      );
      assert.match(
        metrics,
        /vplane_gateway_http_requests_total\{method="GET",route="\/v1\/vms\/\{vm\}",status="404"\} 1/,
      );
      assert.ok(!/route="[^"]*[(^]/.test(metrics), "no regular expression in a route label");
    } finally {
      await gw.close();
    }
  });

  it("routeLabel: parameters as {name}, regular expressions dropped, :: as the custom method's colon", () => {
    assert.equal(routeLabel("/v1/vms/:vm(^[^/:]+)::migrate"), "/v1/vms/{vm}:migrate");
    assert.equal(routeLabel("/v1/operations/:operation/cancel"), "/v1/operations/{operation}/cancel");
    assert.equal(routeLabel("/healthz"), "/healthz");
  });

  it("/metrics carries the process metrics beside the gateway's", async () => {
    const gw = await startTestGateway();
    try {
      const metrics = (await gw.call(null, "GET", "/metrics")).body;
      for (const name of [
        "process_cpu_user_seconds_total",
        "process_resident_memory_bytes",
        "nodejs_eventloop_lag_seconds",
      ])
        assert.match(metrics, new RegExp(`^${name} `, "m"), name);
    } finally {
      await gw.close();
    }
  });
});

describe("request lines in the log", () => {
  it("an API request writes one line, at its end: method, URL, status, time, request id", async () => {
    const { lines, sink } = jsonLineSink();
    const gw = await startTestGateway({ logDestination: sink });
    try {
      const answer = await gw.call("viewer", "GET", "/v1/vms");
      const id = answer.headers["x-request-id"];
      const mine = lines.filter((l) => l["reqId"] === id);
      assert.equal(mine.length, 1, JSON.stringify(mine));
      const [line] = mine as [Record<string, unknown>];
      assert.equal(line["msg"], "request completed");
      assert.deepEqual(
        [(line["req"] as { method: string; url: string }).method, (line["req"] as { url: string }).url],
        ["GET", "/v1/vms"],
      );
      assert.equal((line["res"] as { statusCode: number }).statusCode, 200);
      assert.equal(typeof line["responseTime"], "number");
    } finally {
      await gw.close();
    }
  });

  it("a verified caller's request line names it: tenant and token id (never the token)", async () => {
    const { lines, sink } = jsonLineSink();
    const gw = await startTestGateway({ logDestination: sink });
    try {
      const caller = gw.tokens.authenticate(`Bearer ${gw.token.operator}`)!;
      const answer = await gw.call("operator", "GET", "/v1/vms/nosuch");
      assert.equal(answer.statusCode, 404);
      const [line] = lines.filter((l) => l["reqId"] === answer.headers["x-request-id"]);
      assert.equal(line?.["msg"], "request completed");
      assert.deepEqual([line["tenant"], line["tokenId"]], [caller.tenant, caller.tokenId]);
      assert.ok(!JSON.stringify(line).includes(gw.token.operator), "the token itself is not logged");
    } finally {
      await gw.close();
    }
  });
});

describe("probe requests in the log", () => {
  it("health, readiness and metrics requests write no info lines; an API request does", async () => {
    const { lines, sink } = jsonLineSink();
    const gw = await startTestGateway({ logDestination: sink });
    try {
      for (const url of ["/healthz", "/readyz", "/metrics"]) await gw.call(null, "GET", url);
      assert.deepEqual(lines, [], "a container probe every 5 s writes nothing at info");
      await gw.call("viewer", "GET", "/v1/vms");
      assert.ok(
        lines.some((l) => l["msg"] === "request completed"),
        "API requests are still logged",
      );
    } finally {
      await gw.close();
    }
  });
});
