import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { errorHandling } from "../src/http/error-handler.js";
import { rateLimit } from "../src/access/rate-limit.js";

async function limitedApp(perSecond: number, clock: { ms: number }) {
  const app = Fastify();
  await app.register(errorHandling);
  await app.register(rateLimit, { perSecond, now: () => clock.ms });
  app.get("/x", () => ({ ok: true }));
  return app;
}

const get = (app: Awaited<ReturnType<typeof limitedApp>>, token?: string) =>
  app.inject({
    method: "GET",
    url: "/x",
    headers: token ? { authorization: `Bearer vpl_${token}_secret` } : {},
  });

describe("rate limit (per caller, one-second fixed windows)", () => {
  it("counts down in the headers, answers 429 RATE_LIMITED with retry-after past the limit, and starts over in the next window", async () => {
    const clock = { ms: 10_250 };
    const app = await limitedApp(3, clock);
    const token = "0123456789ab";
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await get(app, token);
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers["x-ratelimit-limit"], "3");
      assert.equal(response.headers["x-ratelimit-reset"], "1");
      remaining.push(String(response.headers["x-ratelimit-remaining"]));
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const refused = await get(app, token);
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["retry-after"], "1");
    const { error } = refused.json<{ error: { code: string; reason: string } }>();
    assert.deepEqual([error.code, error.reason], ["RESOURCE_EXHAUSTED", "RATE_LIMITED"]);
    // Another token, and a caller without one (by address), have budgets of their own.
    assert.equal((await get(app, "ba9876543210")).statusCode, 200);
    assert.equal((await get(app)).statusCode, 200);
    clock.ms = 11_000; // the next window
    const again = await get(app, token);
    assert.equal(again.statusCode, 200);
    assert.equal(again.headers["x-ratelimit-remaining"], "2");
    await app.close();
  });
});
