// A gateway built in the test process around a given store (in-memory SQLite by default), with
// tokens for two tenants and every role, answering through fastify's inject (no port needed).
import assert from "node:assert/strict";
import { credentials } from "@grpc/grpc-js";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { createLogger } from "@vplane/service-kit";
import { suiteFixture } from "@vplane/service-kit/testing";
import { openStore, type Store } from "@vplane/store";
import pino from "pino";
import { AccessTokens, type Role } from "../../src/access/access-tokens.js";
import { AuditLog } from "../../src/access/audit-log.js";
import { buildApp } from "../../src/app.js";
import { buildGatewayServices, type GatewayParts } from "../../src/gateway.js";
import { FakeHost } from "./fake-host.js";
import type { GatewayServices } from "../../src/gateway-services.js";

export interface TestGateway {
  app: FastifyInstance;
  services: GatewayServices;
  tokens: AccessTokens;
  /** token of each principal: "admin", "operator", "viewer" of tenant "acme"; "other" is tenant "globex" operator. */
  token: Record<"admin" | "operator" | "viewer" | "other" | "otherAdmin", string>;
  call(
    who: keyof TestGateway["token"] | null,
    method: InjectOptions["method"],
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
  /** Listens on a loopback port (for clients that need a socket: fetch, SSE, raw HTTP). */
  listen(): Promise<{ port: number; base: string }>;
  /** Polls an operation until done and returns it. */
  waitForOperation(who: keyof TestGateway["token"], name: string, timeoutMs?: number): Promise<OperationJson>;
  /** POST /v1/vms with `spec` and waits for the create; fails the test unless it SUCCEEDED. */
  createVm(who: keyof TestGateway["token"], spec: Record<string, unknown>): Promise<OperationJson>;
  close(): Promise<void>;
}

export interface OperationJson {
  name: string;
  done: boolean;
  metadata: {
    state: string;
    progressPercent: number;
    step: string;
    steps: { name: string; state: string }[];
    cancelRequested: boolean;
    lastSeq: number;
  };
  error?: { code: string; reason: string; message: string; details: Record<string, unknown> };
  response?: Record<string, unknown>;
}

export async function startTestGateway(
  options: {
    store?: Store;
    tokens?: AccessTokens;
    rateLimitPerSecond?: number;
    bodyLimitBytes?: number;
    /** How long a retry waits for the first request with its Idempotency-Key (default 10 s). */
    idempotencyWaitMs?: number;
    operationTimeoutMs?: number;
    /** How long a running operation's step waits for a registry that does not answer. */
    registryOutageMs?: number;
    logDestination?: pino.DestinationStream;
    /** Where the audit trail goes (none: not audited). */
    auditDestination?: { write(line: string): unknown };
    fleet?: GatewayParts["fleet"];
  } = {},
): Promise<TestGateway> {
  const store = options.store ?? openStore("sqlite::memory:");
  const tokens = options.tokens ?? AccessTokens.inMemory();
  const issue = (tenant: string, role: Role) => tokens.issue({ tenant, role }).token;
  const token = {
    admin: issue("acme", "admin"),
    operator: issue("acme", "operator"),
    viewer: issue("acme", "viewer"),
    other: issue("globex", "operator"),
    otherAdmin: issue("globex", "admin"),
  };
  const log = options.logDestination
    ? createLogger({ name: "gateway", level: "info", destination: options.logDestination })
    : pino({ level: "silent" });
  const services = buildGatewayServices({
    log,
    ...(options.auditDestination ? { audit: new AuditLog(options.auditDestination) } : {}),
    store,
    tokens,
    credentials: credentials.createInsecure(),
    rpcTimeoutMs: 5000,
    operationTimeoutMs: options.operationTimeoutMs ?? 30_000,
    ...(options.registryOutageMs ? { registryOutageMs: options.registryOutageMs } : {}),
    ...(options.fleet ? { fleet: options.fleet } : {}),
    limits: {
      rateLimitPerSecond: options.rateLimitPerSecond ?? 0,
      ...(options.bodyLimitBytes ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
      ...(options.idempotencyWaitMs ? { idempotencyWaitMs: options.idempotencyWaitMs } : {}),
    },
  });
  const app = await buildApp(services);
  await app.ready();
  const call: TestGateway["call"] = (who, method, url, body, headers = {}) =>
    app.inject({
      method,
      url,
      headers: { ...(who ? { authorization: `Bearer ${token[who]}` } : {}), ...headers },
      ...(body !== undefined ? { payload: body as InjectOptions["payload"] } : {}),
    });
  const waitForOperation: TestGateway["waitForOperation"] = async (who, name, timeoutMs = 10_000) => {
    // Monotonic: a step of the wall clock (a VM's clock being synced) does not cut the wait short.
    const until = performance.now() + timeoutMs;
    for (;;) {
      const response = await call(who, "GET", `/v1/${name}`);
      const operation = response.json<OperationJson>();
      if (operation.done) return operation;
      if (performance.now() > until) throw new Error(`operation ${name} not done: ${response.body}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    app,
    services,
    tokens,
    token,
    call,
    async listen() {
      await app.listen({ host: "127.0.0.1", port: 0 });
      const { port } = app.server.address() as { port: number };
      return { port, base: `http://127.0.0.1:${port}` };
    },
    waitForOperation,
    async createVm(who, spec) {
      const created = await call(who, "POST", "/v1/vms", spec);
      assert.equal(created.statusCode, 202, created.body);
      const done = await waitForOperation(who, created.json<OperationJson>().name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      return done;
    },
    async close() {
      await app.close();
      await services.runner.drain();
      services.connections.close();
      if (!options.store) await store.close();
    },
  };
}

/** A test gateway with one fake host registered as "h1"; close() stops both. */
export async function startGatewayWithHost(
  options: Parameters<typeof startTestGateway>[0] = {},
): Promise<{ gw: TestGateway; host: FakeHost; close: () => Promise<void> }> {
  const host = await FakeHost.start();
  const gw = await startTestGateway(options);
  await gw.services.hosts.register({ name: "h1", addresses: host.addresses }, "api");
  return {
    gw,
    host,
    close: async () => {
      await gw.close();
      await host.stop();
    },
  };
}

/** A describe block's gateway listening on a loopback port (`port`): started before its tests, closed after. */
export function suiteListeningGateway(): { gw: TestGateway; port: number } {
  return suiteFixture(
    async () => {
      const gw = await startTestGateway();
      return { gw, port: (await gw.listen()).port };
    },
    ({ gw }) => gw.close(),
  );
}

/**
 * A describe block's gateway with one fake host ("h1") over an in-memory SQLite registry that its
 * tests see through `wrap` (a store that counts or fails calls): started before them, closed after.
 */
export function suiteGatewayOverStore(
  wrap: (store: Store) => Store,
  options: Parameters<typeof startTestGateway>[0] = {},
): { gw: TestGateway; host: FakeHost } {
  return suiteFixture(
    async () => {
      const store = openStore("sqlite::memory:");
      const { gw, host, close } = await startGatewayWithHost({ ...options, store: wrap(store) });
      return { gw, host, store, close };
    },
    async ({ close, store }) => {
      await close();
      await store.close();
    },
  );
}
