import assert from "node:assert/strict";
import { it } from "node:test";
import pino from "pino";
import { buildApp } from "../src/app.js";

it("GET /healthz answers 200 while the process is up (liveness)", async () => {
  const app = buildApp({ log: pino({ level: "silent" }) });
  const response = await app.inject({ method: "GET", url: "/healthz" });
  assert.equal(response.statusCode, 200);
  assert.deepEqual(response.json(), { status: "ok" });
  await app.close();
});
