import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Server, ServerCredentials, credentials } from "@grpc/grpc-js";
import { HealthClient } from "../src/health-client.js";
import { HealthService } from "../src/health-service.js";
import { startEcho } from "./support.js";

describe("HealthClient: grpc.health.v1 Check for probes, never throwing", () => {
  it("SERVING from a started service, NOT_SERVING from a server that says so, UNREACHABLE once it is gone", async () => {
    const env = await startEcho();
    const serving = new HealthClient(env.service.server.address, credentials.createInsecure());
    assert.equal(await serving.check(), "SERVING");
    env.health.close();
    env.echo.close();
    await env.service.stop(1000);
    assert.equal(await serving.check(300), "UNREACHABLE", "nothing answers any more");
    serving.close();

    // A HealthService starts NOT_SERVING until its server says otherwise.
    const server = new Server();
    new HealthService([]).addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const starting = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
    assert.equal(await starting.check(), "NOT_SERVING");
    assert.equal(await starting.check(1000, "no.such.Service"), "UNREACHABLE", "an error is no answer");
    starting.close();
    server.forceShutdown();
  });
});
