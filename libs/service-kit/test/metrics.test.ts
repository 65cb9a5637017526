import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unaryCall } from "../src/unary-call.js";
import { sampleValue, scrapeMetrics } from "../src/testing.js";
import { startEcho } from "./support.js";

/** Runs `body` against an echo service with a metrics listener on a free port, then stops it. */
async function withMetricsListener(
  body: (env: Awaited<ReturnType<typeof startEcho>>, metricsAddress: string) => Promise<void>,
): Promise<void> {
  const env = await startEcho({ metricsAddress: "127.0.0.1:0" });
  try {
    await body(env, env.service.metricsAddress!);
  } finally {
    env.echo.close();
    env.health.close();
    await env.service.stop(1000);
  }
}

describe("metrics listener (--metrics-addr)", () => {
  it("counts each RPC by method and status code name and times it, on GET /metrics", () =>
    withMetricsListener(async (env, metricsAddress) => {
      const echo = env.echo.echo.bind(env.echo);
      await unaryCall(echo, { payload: "a", failWithReason: "" }, { timeoutMs: 5000 });
      await unaryCall(echo, { payload: "b", failWithReason: "" }, { timeoutMs: 5000 });
      await assert.rejects(unaryCall(echo, { payload: "", failWithReason: "ASKED" }, { timeoutMs: 5000 }));
      const text = await scrapeMetrics(metricsAddress);
      const echoLabels = {
        grpc_service: "vplane.testing.v1.EchoService",
        grpc_method: "Echo",
        grpc_type: "unary",
      };
      assert.equal(sampleValue(text, "grpc_server_handled_total", { ...echoLabels, grpc_code: "OK" }), 2);
      assert.equal(
        sampleValue(text, "grpc_server_handled_total", { ...echoLabels, grpc_code: "INVALID_ARGUMENT" }),
        1,
      );
      assert.equal(sampleValue(text, "grpc_server_handling_seconds_count", echoLabels), 3);
      assert.equal(
        sampleValue(text, "grpc_server_handling_seconds_bucket", { ...echoLabels, le: "+Inf" }),
        3,
      );
    }));

  it("adds the process metrics (CPU, resident memory, event-loop lag) to the service's", () =>
    withMetricsListener(async (_env, metricsAddress) => {
      const text = await scrapeMetrics(metricsAddress);
      for (const name of [
        "process_cpu_user_seconds_total",
        "process_resident_memory_bytes",
        "nodejs_eventloop_lag_seconds",
      ])
        assert.match(text, new RegExp(`^${name} `, "m"), name);
    }));

  it("serves only GET /metrics: another path is 404, another method 405 with Allow", () =>
    withMetricsListener(async (_env, metricsAddress) => {
      assert.equal((await fetch(`http://${metricsAddress}/other`)).status, 404);
      const post = await fetch(`http://${metricsAddress}/metrics`, { method: "POST" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
    }));

  it("listens only when asked, and stops listening when the service stops", async () => {
    const quiet = await startEcho();
    assert.equal(quiet.service.metricsAddress, undefined);
    quiet.echo.close();
    quiet.health.close();
    await quiet.service.stop(1000);

    let address = "";
    await withMetricsListener((_env, metricsAddress) => {
      address = metricsAddress;
      return Promise.resolve();
    });
    await assert.rejects(fetch(`http://${address}/metrics`), /fetch failed/);
  });
});
