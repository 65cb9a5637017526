import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { credentials, type ClientReadableStream } from "@grpc/grpc-js";
import pino from "pino";
import { EchoServiceClient, EchoServiceService } from "@vplane/proto/gen/vplane/testing/v1/echo";
import { echoService } from "../src/echo-service.js";
import { unaryCall } from "../src/unary-call.js";
import { startService } from "../src/service-runner.js";
import { VplaneError } from "../src/vplane-error.js";
import { echoDescription, startEcho, testConfig } from "./support.js";

function check(health: Awaited<ReturnType<typeof startEcho>>["health"], service = ""): Promise<string> {
  return new Promise((resolve, reject) =>
    health["check"]!({ service }, (e: Error | null, r: { status: string }) =>
      e ? reject(e) : resolve(r.status),
    ),
  );
}

describe("health", () => {
  it("says SERVING once started, for the server and for each service", async () => {
    const env = await startEcho();
    assert.equal(await check(env.health), "SERVING");
    assert.equal(await check(env.health, "vplane.testing.v1.EchoService"), "SERVING");
    await assert.rejects(check(env.health, "no.such.Service"), /unknown service/);
    env.health.close();
    env.echo.close();
    await env.service.stop(1000);
  });

  it("flips to NOT_SERVING when a shutdown starts, then ends the watch so the drain stays graceful", async () => {
    const env = await startEcho();
    const watch = env.health["watch"]!({ service: "" }) as ClientReadableStream<{ status: string }>;
    const seen: string[] = [];
    const ended = new Promise<void>((resolve) => {
      watch.on("data", (m: { status: string }) => seen.push(m.status));
      watch.on("end", resolve);
      watch.on("error", () => resolve());
    });
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    const outcome = await env.service.stop(5000);
    await ended;
    assert.deepEqual(seen, ["SERVING", "NOT_SERVING"]);
    assert.equal(outcome, "graceful");
    env.health.close();
    env.echo.close();
  });
});

describe("graceful shutdown", () => {
  it("lets an in-flight call finish within the grace period", async () => {
    const env = await startEcho();
    // Connected first: on a loaded machine the first connect can outlast the 50 ms below, and a
    // call not yet on the server when it stops is refused (ECONNRESET), which is not this rule.
    await unaryCall(env.echo.echo.bind(env.echo), { payload: "", failWithReason: "" });
    const inFlight = unaryCall(env.echo.sleep.bind(env.echo), { delayMs: 300 }, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    const outcome = await env.service.stop(5000);
    assert.deepEqual(await inFlight, { completed: true });
    assert.equal(outcome, "graceful");
    env.echo.close();
  });

  it("cancels what is left once the grace period is over and says it was forced", async () => {
    // The stop starts once the Sleep is on the server: a call still on its way when the server
    // stops is refused, not cancelled, and the stop is then graceful (seen under CI's load).
    let entered!: () => void;
    const onServer = new Promise<void>((resolve) => (entered = resolve));
    const service = await startService(
      {
        ...echoDescription,
        start: ({ handlers }) => {
          const echo = echoService(handlers);
          const sleep = echo.implementation["sleep"] as (...args: unknown[]) => unknown;
          const implementation = {
            ...echo.implementation,
            sleep: (...args: unknown[]) => {
              entered();
              return sleep(...args);
            },
          };
          return Promise.resolve({ services: [{ ...echo, implementation }] });
        },
      },
      testConfig(),
      pino({ level: "silent" }),
    );
    const client = new EchoServiceClient(service.server.address, credentials.createInsecure());
    const inFlight = unaryCall(client.sleep.bind(client), { delayMs: 10_000 }, { timeoutMs: 20_000 });
    await onServer;
    const outcome = await service.stop(100);
    assert.equal(outcome, "forced");
    await assert.rejects(
      inFlight,
      (e: unknown) => e instanceof VplaneError && ["CANCELLED", "UNAVAILABLE"].includes(e.code),
    );
    client.close();
  });
});

describe("deadlines", () => {
  it("cancels a call past its deadline, on the client and in the handler", async () => {
    let handlerSawAbort: Promise<boolean> = Promise.resolve(false);
    const service = await startService(
      {
        ...echoDescription,
        start: ({ handlers }) =>
          Promise.resolve({
            services: [
              {
                definition: EchoServiceService,
                implementation: {
                  echo: handlers.unary(() => ({ payload: "" })),
                  sleep: handlers.unary((_request, context) => {
                    handlerSawAbort = new Promise((resolve) => {
                      const timer = setTimeout(() => resolve(false), 3000);
                      context.signal.addEventListener("abort", () => {
                        clearTimeout(timer);
                        resolve(true);
                      });
                    });
                    return handlerSawAbort.then(() => ({ completed: false }));
                  }),
                },
              },
            ],
          }),
      },
      testConfig(),
      pino({ level: "silent" }),
    );
    const client = new EchoServiceClient(service.server.address, credentials.createInsecure());
    try {
      // Connected first: under load a connection can take longer than the deadline, and a call
      // that expires before it reaches the server never runs the handler this test watches.
      await new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
      );
      await assert.rejects(
        unaryCall(client.sleep.bind(client), { delayMs: 0 }, { timeoutMs: 300 }),
        (e: unknown) => e instanceof VplaneError && e.code === "DEADLINE_EXCEEDED",
      );
      assert.equal(await handlerSawAbort, true);
    } finally {
      client.close();
      await service.stop(1000);
    }
  });
});
