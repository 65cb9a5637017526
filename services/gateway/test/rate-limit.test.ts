import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { AccessTokens } from "../src/access/access-tokens.js";
import { callerIdentity } from "../src/access/authentication.js";
import { rateLimit } from "../src/access/rate-limit.js";
import { errorHandling } from "../src/http/error-handler.js";
import { startTestGateway } from "./support/test-gateway.js";

async function limitedApp(perSecond: number, authFailuresPerSecond: number, clock: { ms: number }) {
  const tokens = AccessTokens.inMemory();
  const app = Fastify();
  await app.register(errorHandling);
  await app.register(callerIdentity, { tokens });
  await app.register(rateLimit, { perSecond, authFailuresPerSecond, now: () => clock.ms });
  app.get("/x", () => ({ ok: true }));
  const issue = () => tokens.issue({ tenant: "acme", role: "viewer" }).token;
  return { app, issue };
}

const get = (app: Awaited<ReturnType<typeof limitedApp>>["app"], token?: string, remoteAddress?: string) =>
  app.inject({
    method: "GET",
    url: "/x",
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(remoteAddress ? { remoteAddress } : {}),
  });

const reasonOf = (response: { json<T>(): T }) =>
  response.json<{ error: { code: string; reason: string } }>().error;

describe("rate limit (one-second fixed windows)", () => {
  it("counts a verified token's requests down in the headers, answers 429 RATE_LIMITED with retry-after past the limit, and starts over in the next window", async () => {
    const clock = { ms: 10_250 };
    const { app, issue } = await limitedApp(3, 2, clock);
    const token = issue();
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
    assert.deepEqual(Object.values(reasonOf(refused)).slice(0, 2), ["RESOURCE_EXHAUSTED", "RATE_LIMITED"]);
    // Another token, and a caller without one (by address), have budgets of their own.
    assert.equal((await get(app, issue())).statusCode, 200);
    assert.equal((await get(app)).statusCode, 200);
    clock.ms = 11_000; // the next window
    const again = await get(app, token);
    assert.equal(again.statusCode, 200);
    assert.equal(again.headers["x-ratelimit-remaining"], "2");
    await app.close();
  });

  it("a token that does not verify counts against its client address and that address's failed-authentication budget, never against the token it names", async () => {
    const clock = { ms: 20_000 };
    const { app, issue } = await limitedApp(5, 2, clock);
    const token = issue();
    const forged = `${token.slice(0, 17)}${"A".repeat(43)}`; // the real token id, a made-up secret
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(app, forged, "10.0.0.9")).statusCode);
    assert.deepEqual(statuses, [200, 200, 429, 429], "the route itself does not authenticate here");
    const refused = await get(app, forged, "10.0.0.9");
    assert.equal(reasonOf(refused).reason, "AUTHENTICATION_FAILURES_RATE_LIMITED");
    assert.equal(refused.headers["x-ratelimit-limit"], "2");
    // The real token, even from the guessing address, spends its own budget in full.
    for (let i = 0; i < 5; i++) assert.equal((await get(app, token, "10.0.0.9")).statusCode, 200);
    assert.equal((await get(app, token, "10.0.0.9")).statusCode, 429);
    // Another address's failed authentications have their own budget.
    assert.equal((await get(app, forged, "10.0.0.10")).statusCode, 200);
    await app.close();
  });
});

describe("rate limit through the gateway", () => {
  it("a flood with a forged token naming the admin's token id ends in 429s, and the real admin token is still served at once (issue 17 point 3)", async () => {
    const gw = await startTestGateway({ rateLimitPerSecond: 50 });
    try {
      const forged = `Bearer ${gw.token.admin.slice(0, 17)}${"A".repeat(43)}`;
      const statuses: number[] = [];
      while (statuses.at(-1) !== 429 && statuses.length < 200) {
        const response = await gw.call(null, "GET", "/v1/hosts", undefined, { authorization: forged });
        statuses.push(response.statusCode);
      }
      assert.deepEqual(new Set(statuses), new Set([401, 429]), "401 until its budget is spent, then 429");
      const real = await gw.call("admin", "GET", "/v1/hosts");
      assert.equal(real.statusCode, 200, real.body);
    } finally {
      await gw.close();
    }
  });
});
