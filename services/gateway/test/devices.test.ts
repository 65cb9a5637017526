// Device endpoints and streams through the gateway, against the real interrupt-controller service
// (started in this process) and the fake IOMMU of fake-host.ts: REST in, gRPC to the VM's host,
// the service's answers and errors (errno in details) back in the REST shapes.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";
import { FakeHost } from "./support/fake-host.js";
import { openSse } from "./support/sse-client.js";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

const MIB = 1 << 20;
/** KVM SOURCE_CONFIG layout: priority bits 2:0, server bits 31:3, masked bit 32, EISN bits 63:33. */
const kvmConfig = (server: number, priority: number, eisn: number) =>
  ((BigInt(eisn) << 33n) | (BigInt(server) << 3n) | BigInt(priority)).toString();

describe("device endpoints on a real interrupt-controller", () => {
  let gw: TestGateway;
  let fake: FakeHost;
  let interrupt: ServiceUnderTest;
  let dataDir: string;
  let base: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vplane-gw-devices-"));
    interrupt = await startServiceForTests(interruptControllerDescription, { VPLANE_DATA_DIR: dataDir });
    fake = await FakeHost.start();
    gw = await startTestGateway();
    await gw.services.hosts.register(
      {
        name: "h1",
        addresses: { interruptController: interrupt.address, iommu: fake.address, migration: fake.address },
      },
      "api",
    );
    await gw.createVm("operator", {
      name: "dev-1",
      vcpus: 2,
      memoryBytes: 16 * MIB,
      interruptController: { mode: "xive", nrServers: 8 },
      iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: 8, virtualSid: 0 }] }] },
    });
    ({ base } = await gw.listen());
  });
  after(async () => {
    await gw.close();
    await fake.stop();
    await interrupt.stop(500);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const ok = async (method: "GET" | "POST" | "PUT", url: string, body?: unknown) => {
    const response = await gw.call("operator", method, url, body);
    assert.equal(response.statusCode, 200, `${method} ${url}: ${response.body}`);
    return response.json<Record<string, unknown>>();
  };

  it("connect a vCPU, init and configure a source, configure a queue, trigger: the event lands in the queue and raises the vCPU", async () => {
    const signals = await openSse(`${base}/v1/vms/dev-1/vcpu-signals`, {
      authorization: `Bearer ${gw.token.viewer}`,
    });
    assert.equal(signals.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the watch reaches the service
    await ok("POST", "/v1/vms/dev-1/vcpus/connect", { vcpuId: 0, server: 0 });
    // The guest opens its CPPR to 0xFF (TIMA OS page, byte 0x11) so priority 6 is presented.
    await ok("POST", "/v1/vms/dev-1/vcpus/0/tima", {
      offset: 0x2_0011,
      size: 1,
      kind: "ACCESS_KIND_STORE",
      value: "255",
    });
    await ok("POST", "/v1/vms/dev-1/sources/init", { sources: [{ irq: 10 }] });
    await ok("PUT", "/v1/vms/dev-1/queues/0/6", { queue: { flags: 1, qshift: 16, qaddr: String(MIB) } });
    const configured = await ok("POST", "/v1/vms/dev-1/sources/configure", {
      sources: [{ irq: 10, kvmConfig: kvmConfig(0, 6, 0x42) }],
    });
    assert.deepEqual(configured["effectiveServers"], [0]);
    const source = await ok("GET", "/v1/vms/dev-1/sources/10");
    assert.deepEqual(
      [
        (source["source"] as Record<string, unknown>)["priority"],
        (source["source"] as Record<string, unknown>)["eisn"],
      ],
      [6, 0x42],
    );
    // The guest enables the source with an ESB load at SET_PQ_00 (0xC00) on the management page.
    await ok("POST", "/v1/vms/dev-1/sources/10/esb", {
      page: "ESB_PAGE_MANAGEMENT",
      offset: 0xc00,
      kind: "ACCESS_KIND_LOAD",
    });
    const triggered = await ok("POST", "/v1/vms/dev-1/sources/trigger", { irqs: [10] });
    assert.equal(triggered["delivered"], 1, JSON.stringify(triggered));
    const queue = await ok("GET", "/v1/vms/dev-1/queues/0/6");
    assert.equal((queue["queue"] as Record<string, unknown>)["qindex"], 1, JSON.stringify(queue));
    const raised = await signals.next();
    assert.equal(raised?.event, "signal");
    assert.deepEqual(
      [
        (raised?.data as Record<string, unknown>)["server"],
        (raised?.data as Record<string, unknown>)["raised"],
      ],
      [0, true],
    );
    assert.ok(raised?.id && Number(raised.id) >= 1);
    signals.close();
    // Resuming after that event does not repeat it; the next one (the guest's ACK lowers the
    // line) arrives with a higher id.
    const resumed = await openSse(`${base}/v1/vms/dev-1/vcpu-signals`, {
      authorization: `Bearer ${gw.token.viewer}`,
      "last-event-id": raised.id,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await ok("POST", "/v1/vms/dev-1/vcpus/0/tima", { offset: 0x2_0810, size: 2, kind: "ACCESS_KIND_LOAD" });
    const lowered = await resumed.next();
    assert.equal(lowered?.event, "signal");
    assert.equal((lowered?.data as Record<string, unknown>)["raised"], false);
    assert.equal(Number(lowered?.id), Number(raised.id) + 1);
    resumed.close();
    const dump = await ok("GET", "/v1/vms/dev-1/interrupt-controller/dump");
    assert.equal(typeof dump["text"], "string");
    assert.ok((dump["text"] as string).length > 0);
  });

  it("HEAD on a stream route answers at once with the stream's headers, and opens no stream (issue 17 point 6)", async () => {
    for (const path of ["/v1/vms/dev-1/vcpu-signals", "/v1/vms/dev-1/smmus/s0/events"]) {
      const response = await fetch(`${base}${path}`, {
        method: "HEAD",
        headers: { authorization: `Bearer ${gw.token.viewer}` },
        signal: AbortSignal.timeout(2000),
      });
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/, path);
    }
    const missing = await fetch(`${base}/v1/vms/nope/vcpu-signals`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${gw.token.viewer}` },
      signal: AbortSignal.timeout(2000),
    });
    assert.equal(missing.status, 404, "HEAD tells what GET would: no such VM");
  });

  it("the service's validation comes back in the error shape with its errno (priority 7 is EINVAL)", async () => {
    const response = await gw.call("operator", "PUT", "/v1/vms/dev-1/queues/0/7", {
      queue: { flags: 1, qshift: 16, qaddr: String(2 * MIB) },
    });
    assert.equal(response.statusCode, 400, response.body);
    const error = response.json<{ error: { code: string; details: { errno?: number } } }>().error;
    assert.equal(error.code, "INVALID_ARGUMENT");
    assert.equal(error.details.errno, 22);
  });

  it("a body cannot name a device: `name` is not part of any device body", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms/dev-1/sources/trigger", {
      name: "vms/someone-else/controller",
      irqs: [10],
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json<{ error: { details: { field: string } } }>().error.details.field, "name");
  });

  it("device bodies are validated by the message schema: 64-bit fields as decimal strings, types, unknown fields", async () => {
    for (const [body, field] of [
      [{ sources: [{ irq: "ten" }] }, "sources[0].irq"],
      [{ sources: [{ irq: 10, kvmConfig: "0x12" }] }, "sources[0].kvmConfig"],
      [{ sources: [{ irq: 10, color: 1 }] }, "sources[0].color"],
    ] as const) {
      const response = await gw.call("operator", "POST", "/v1/vms/dev-1/sources/configure", body);
      assert.equal(response.statusCode, 400, JSON.stringify(body));
      assert.equal(response.json<{ error: { details: { field: string } } }>().error.details.field, field);
    }
  });

  it("viewers cannot call mutating device endpoints; another tenant gets 404 on every device route", async () => {
    assert.equal(
      (await gw.call("viewer", "POST", "/v1/vms/dev-1/sources/trigger", { irqs: [10] })).statusCode,
      403,
    );
    assert.equal((await gw.call("viewer", "GET", "/v1/vms/dev-1/sources/10")).statusCode, 200);
    for (const [method, url, body] of [
      ["GET", "/v1/vms/dev-1/sources/10", undefined],
      ["POST", "/v1/vms/dev-1/sources/trigger", { irqs: [10] }],
      ["PUT", "/v1/vms/dev-1/queues/0/6", { queue: { flags: 1, qshift: 16, qaddr: "1048576" } }],
      ["GET", "/v1/vms/dev-1/interrupt-controller/dump", undefined],
      ["GET", "/v1/vms/dev-1/vcpu-signals", undefined],
      ["POST", "/v1/vms/dev-1/smmus/s0/translate", { streamId: 8, iova: "4096" }],
      ["GET", "/v1/vms/dev-1/smmus/s0/events", undefined],
    ] as const) {
      const response = await gw.call("other", method, url, body);
      assert.equal(response.statusCode, 404, `${method} ${url}`);
      assert.equal(response.json<{ error: { reason: string } }>().error.reason, "VM_NOT_FOUND");
    }
  });

  it("an SMMU the VM does not have is 404 SMMU_NOT_FOUND", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms/dev-1/smmus/s9/translate", {
      streamId: 8,
      iova: "4096",
    });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json<{ error: { reason: string } }>().error.reason, "SMMU_NOT_FOUND");
  });

  it("an RPC the host's service does not implement answers 501 UNIMPLEMENTED in the error shape", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms/dev-1/smmus/s0/translate", {
      streamId: 8,
      iova: "4096",
    });
    assert.equal(response.statusCode, 501, response.body);
    assert.equal(response.json<{ error: { code: string } }>().error.code, "UNIMPLEMENTED");
  });

  it("the device routes are in the OpenAPI document with their message schemas", async () => {
    const doc = (await gw.call(null, "GET", "/openapi.json")).json<{
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: { $ref: string } }> } }>
      >;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    }>();
    const configure = doc.paths["/v1/vms/{vm}/sources/configure"]?.["post"];
    assert.ok(configure, "configure sources is documented");
    const body = configure.requestBody?.content["application/json"]?.schema.$ref;
    assert.equal(body, "#/components/schemas/ConfigureSourcesRequest", "the message is a named schema");
    assert.ok(doc.components.schemas["ConfigureSourcesRequest"]?.properties["sources"]);
    assert.ok(doc.paths["/v1/vms/{vm}/smmus/{smmu}/pasid-table/attach"]?.["post"]);
    assert.ok(doc.paths["/v1/vms/{vm}/queues/{server}/{priority}"]?.["put"]);
  });
});
