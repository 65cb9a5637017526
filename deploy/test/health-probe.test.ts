import assert from "node:assert/strict";
import { test } from "node:test";
import { migrationDescription } from "@vplane/migration";
import { startServiceForTests } from "@vplane/service-kit/testing";
import { freePort } from "./free-port.js";
import { dialAddress, isHealthy } from "../src/health-probe.js";

test("a wildcard listen address is dialled on loopback; others unchanged", () => {
  assert.equal(dialAddress("0.0.0.0:50051"), "127.0.0.1:50051");
  assert.equal(dialAddress("[::]:8080"), "127.0.0.1:8080");
  assert.equal(dialAddress("10.0.0.5:50052"), "10.0.0.5:50052");
});

test("a serving gRPC service probes healthy, and unhealthy once stopped", async () => {
  const running = await startServiceForTests(migrationDescription);
  const address = running.address;
  assert.equal(await isHealthy("grpc", address), true);
  await running.stop(1000);
  assert.equal(await isHealthy("grpc", address, 500), false);
});

test("nothing listening probes unhealthy for both kinds, without throwing", async () => {
  const port = await freePort();
  assert.equal(await isHealthy("grpc", `127.0.0.1:${port}`, 500), false);
  assert.equal(await isHealthy("http", `127.0.0.1:${port}`, 500), false);
});
