// TLS of the gateway as its entry point starts it (startGateway with options from the
// environment): HTTPS on the REST API (VPLANE_GATEWAY_TLS_CERT/_KEY), and mutual TLS to host
// services that require it (VPLANE_SERVICE_TLS_CA/_CERT/_KEY), with certificates openssl makes
// for this run. The host is the real interrupt-controller and iommu services in this process.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { loadConfig } from "@vplane/service-kit";
import {
  createTestCertificates,
  startServiceForTests,
  type ServiceUnderTest,
  type TestCertificates,
} from "@vplane/service-kit/testing";
import pino from "pino";
import { startGateway, type RunningGateway } from "../src/gateway.js";
import { gatewayOptionsSpec } from "../src/gateway-options.js";
import type { OperationJson } from "./support/test-gateway.js";

const MIB = 1 << 20;
/** Time limit of every HTTP request, and of each wait for an operation. */
const REQUEST_TIMEOUT_MS = 5000;
const OPERATION_WAIT_MS = 20_000;
/** The gateway's deadline of each call to a host service (VPLANE_GATEWAY_RPC_TIMEOUT_MS). */
const RPC_TIMEOUT_MS = 8000;

interface TestGatewayProcess {
  gateway: RunningGateway;
  /** The admin token the gateway created on its first start. */
  token: string;
  close(): Promise<void>;
}

/** startGateway (what main runs) with options from `env`, its own data folder, silent. */
async function startGatewayFromEnv(env: Record<string, string>): Promise<TestGatewayProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), "vplane-gw-tls-"));
  const config = loadConfig(gatewayOptionsSpec, {
    argv: [],
    env: {
      VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
      VPLANE_DATA_DIR: dataDir,
      VPLANE_LOG_LEVEL: "silent",
      VPLANE_GATEWAY_RATE_LIMIT: "0",
      // A failing call gives up in time; an operation can never outlive the test.
      VPLANE_GATEWAY_RPC_TIMEOUT_MS: String(RPC_TIMEOUT_MS),
      VPLANE_GATEWAY_OPERATION_TIMEOUT_MS: "15000",
      ...env,
    },
  });
  let token = "";
  try {
    const gateway = await startGateway(config, pino({ level: "silent" }), {
      onAdminToken: (issued) => (token = issued),
    });
    assert.ok(token, "the first start created an admin token");
    return {
      gateway,
      token,
      async close() {
        await gateway.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

interface HttpAnswer {
  status: number;
  body: string;
}

/** One request with node:http or node:https; rejects on a socket error or after the time limit. */
function send(url: string, options: { ca?: Buffer } = {}): Promise<HttpAnswer> {
  const request = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", timeout: REQUEST_TIMEOUT_MS, ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** The REST API through fastify's inject, with the gateway's admin token. */
async function rest(gw: TestGatewayProcess, method: "GET" | "POST", url: string, body?: unknown) {
  return gw.gateway.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${gw.token}` },
    ...(body !== undefined ? { payload: body as Record<string, unknown> } : {}),
  });
}

/** POST /v1/vms, then polls the operation until it is done (or fails the test after a while). */
async function createVm(gw: TestGatewayProcess, name: string): Promise<OperationJson> {
  const accepted = await rest(gw, "POST", "/v1/vms", {
    name,
    vcpus: 2,
    memoryBytes: 16 * MIB,
    interruptController: { mode: "xive", nrServers: 8 },
    iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: 8, virtualSid: 0 }] }] },
  });
  assert.equal(accepted.statusCode, 202, accepted.body);
  const { name: operation } = accepted.json<OperationJson>();
  const until = Date.now() + OPERATION_WAIT_MS;
  for (;;) {
    const polled = await rest(gw, "GET", `/v1/${operation}`);
    assert.equal(polled.statusCode, 200, polled.body);
    const current = polled.json<OperationJson>();
    if (current.done) return current;
    if (Date.now() > until) assert.fail(`operation ${operation} not done after ${OPERATION_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let certs: TestCertificates;
before(async () => {
  certs = await createTestCertificates();
});
after(() => certs?.remove());

describe("REST API over HTTPS (VPLANE_GATEWAY_TLS_CERT + _KEY)", { timeout: 60_000 }, () => {
  let gw: TestGatewayProcess;
  let port: number;
  before(async () => {
    gw = await startGatewayFromEnv({
      VPLANE_GATEWAY_TLS_CERT: certs.server.cert,
      VPLANE_GATEWAY_TLS_KEY: certs.server.key,
    });
    port = Number(new URL(gw.gateway.url).port);
  });
  after(() => gw?.close());

  it("says it listens on an https:// URL", () => {
    assert.match(gw.gateway.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("answers GET /healthz over HTTPS to a client that trusts the CA", async () => {
    const answer = await send(`https://127.0.0.1:${port}/healthz`, { ca: readFileSync(certs.ca) });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { status: "ok" });
  });

  it("a client that trusts only another CA refuses the gateway's certificate", async () => {
    await assert.rejects(send(`https://127.0.0.1:${port}/healthz`, { ca: readFileSync(certs.otherCa) }), {
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    });
  });

  it("plain HTTP to the same port gets no answer: the connection is closed", async () => {
    await assert.rejects(send(`http://127.0.0.1:${port}/healthz`), { code: "ECONNRESET" });
  });
});

describe("gRPC to host services that require mutual TLS", { timeout: 90_000 }, () => {
  let hostDir: string;
  const services: ServiceUnderTest[] = [];
  let hostEnv: Record<string, string>;
  before(async () => {
    hostDir = mkdtempSync(join(tmpdir(), "vplane-host-tls-"));
    const tls = {
      VPLANE_DATA_DIR: hostDir,
      VPLANE_TLS_CERT: certs.server.cert,
      VPLANE_TLS_KEY: certs.server.key,
      VPLANE_TLS_CLIENT_CA: certs.ca,
    };
    const interrupt = await startServiceForTests(interruptControllerDescription, tls);
    services.push(interrupt);
    const iommu = await startServiceForTests(iommuDescription, tls);
    services.push(iommu);
    // The default host from the gateway's options. A create calls only the interrupt controller
    // and the iommu; the migration address (a required option) points at a TLS service too.
    hostEnv = {
      VPLANE_INTERRUPT_ADDR: interrupt.address,
      VPLANE_IOMMU_ADDR: iommu.address,
      VPLANE_MIGRATION_ADDR: iommu.address,
    };
  });
  after(async () => {
    for (const service of services.reverse()) await service.stop(500);
    rmSync(hostDir, { recursive: true, force: true });
  });

  it("a gateway with the service CA and a client certificate creates a VM on the host", async () => {
    const gw = await startGatewayFromEnv({
      ...hostEnv,
      VPLANE_SERVICE_TLS_CA: certs.ca,
      VPLANE_SERVICE_TLS_CERT: certs.client.cert,
      VPLANE_SERVICE_TLS_KEY: certs.client.key,
    });
    try {
      const done = await createVm(gw, "mtls-1");
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.deepEqual(
        done.metadata.steps.map((s) => [s.name, s.state]),
        [
          ["host.GetCapabilities", "SUCCEEDED"],
          ["interrupt-controller.CreateController", "SUCCEEDED"],
          ["iommu.CreateSmmu(s0)", "SUCCEEDED"],
          ["iommu.AttachDevice(s0: 8->0)", "SUCCEEDED"],
          ["registry.commit", "SUCCEEDED"],
        ],
      );
      const vm = await rest(gw, "GET", "/v1/vms/mtls-1");
      assert.equal(vm.statusCode, 200, vm.body);
      assert.equal(vm.json<{ state: string }>().state, "READY");
      const ready = await rest(gw, "GET", "/readyz");
      assert.equal(ready.statusCode, 200, ready.body);
    } finally {
      await gw.close();
    }
  });

  for (const [what, env] of [
    ["the service CA but no client certificate", () => ({ VPLANE_SERVICE_TLS_CA: certs.ca })],
    [
      "a client certificate another CA signed",
      () => ({
        VPLANE_SERVICE_TLS_CA: certs.ca,
        VPLANE_SERVICE_TLS_CERT: certs.otherClient.cert,
        VPLANE_SERVICE_TLS_KEY: certs.otherClient.key,
      }),
    ],
  ] as const) {
    it(`a gateway with ${what}: the handshake fails, so placement refuses the create (503) and leaves no VM`, async () => {
      const gw = await startGatewayFromEnv({ ...hostEnv, ...env() });
      try {
        const started = Date.now();
        const refused = await rest(gw, "POST", "/v1/vms", {
          name: "refused-1",
          vcpus: 2,
          memoryBytes: 16 * MIB,
          interruptController: { mode: "xive", nrServers: 8 },
        });
        assert.equal(refused.statusCode, 503, refused.body);
        const error = refused.json<{ error: { reason: string; message: string } }>().error;
        assert.equal(error.reason, "NO_HOST_AVAILABLE");
        assert.match(error.message, /interrupt-controller UNREACHABLE/);
        assert.ok(
          Date.now() - started < RPC_TIMEOUT_MS / 2,
          "refused at once, not by running into a deadline",
        );
        assert.equal((await rest(gw, "GET", "/v1/vms/refused-1")).statusCode, 404);
        // The replica itself can serve (its registry answers); the host's services are listed.
        const ready = await rest(gw, "GET", "/readyz");
        assert.equal(ready.statusCode, 200, ready.body);
        assert.deepEqual(ready.json<{ hosts: { services: Record<string, string> }[] }>().hosts[0]?.services, {
          interruptController: "UNREACHABLE",
          iommu: "UNREACHABLE",
          migration: "UNREACHABLE",
        });
      } finally {
        await gw.close();
      }
    });
  }
});
