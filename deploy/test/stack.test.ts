// The whole stack in containers (issue 5): a host's services and the gateway, each a container
// from the deploy image on a network this test creates. From the host, through REST only: create
// a VM, configure a source and a queue, trigger, and read the event from the guest RAM file the
// containers share with this test; provoke an SMMU fault and receive it over SSE. Then kill -9
// the interrupt-controller, start it again, and find every acknowledged configuration there.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { encodeKvmSourceConfig } from "@vplane/xive";
import { buildVplaneImage, containerTier } from "./container-runtime.js";
import { ContainerStack, until, type ContainerHost, type GatewayClient } from "./container-stack.js";

const { skip, missing } = await containerTier();
const MIB = 1024 * 1024;
const QADDR = MIB;
let stack: ContainerStack | undefined;
let host: ContainerHost;
let gateway: GatewayClient;

before(
  async () => {
    if (skip) return;
    if (missing) throw new Error(`CI=true and ${missing}`);
    await buildVplaneImage("vplane-stack-test:latest");
    stack = await ContainerStack.start("vplane-stack-test:latest");
    host = await stack.host("local");
    gateway = await stack.gateway(host);
  },
  { timeout: 600_000 },
);

after(() => stack?.stop());

test(
  "create a VM, route a source to a queue, trigger: the event is in the guest RAM file",
  { skip },
  async () => {
    const operation = await gateway.rest("POST", "/v1/vms", {
      name: "web-1",
      vcpus: 1,
      memoryBytes: 16 * MIB,
      interruptController: { mode: "xive" },
      iommu: { smmus: [{ name: "smmu0", devices: [{ physicalSid: 16, virtualSid: 1 }] }] },
    });
    await gateway.finished(operation);
    const vm = await gateway.rest("GET", "/v1/vms/web-1");
    assert.equal(vm["state"], "READY", JSON.stringify(vm));

    await gateway.rest("POST", "/v1/vms/web-1/vcpus/connect", { vcpuId: 0, server: 0 });
    await gateway.rest("POST", "/v1/vms/web-1/sources/init", { sources: [{ irq: 10 }] });
    await gateway.rest("PUT", "/v1/vms/web-1/queues/0/6", {
      queue: { flags: 1, qshift: 16, qaddr: String(QADDR) },
    });
    const kvmConfig = encodeKvmSourceConfig({ server: 0, priority: 6, eisn: 0x42, masked: false });
    await gateway.rest("POST", "/v1/vms/web-1/sources/configure", {
      sources: [{ irq: 10, kvmConfig: String(kvmConfig) }],
    });
    await gateway.rest("POST", "/v1/vms/web-1/sources/10/esb", {
      page: "ESB_PAGE_MANAGEMENT",
      offset: 0xc00,
      kind: "ACCESS_KIND_LOAD",
    });
    const triggered = await gateway.rest("POST", "/v1/vms/web-1/sources/trigger", { irqs: [10] });
    assert.equal(triggered["delivered"], 1, JSON.stringify(triggered));
    // An event-queue entry is the generation bit and the 31-bit EISN (xive.md).
    const word = readFileSync(join(host.dataDir, String(vm["guestMemoryPath"]))).readUInt32BE(QADDR);
    assert.equal(word & 0x7fffffff, 0x42, `queue word 0x${word.toString(16)}`);
  },
);

test(
  "nested translation set up, an SMMU fault (stage 2 has no mapping) arrives over SSE",
  { skip },
  async () => {
    // The guest's PASID table in the seed form with stage 1 bypassed: the host's stage 2 decides,
    // and its faults are always recorded (smmuv3.md).
    await gateway.rest("POST", "/v1/vms/web-1/smmus/smmu0/pasid-table/attach", {
      seed: { version: 1, format: 1, basePtr: "0", pasidBits: 0, config: 2, smmuv3Version: 1 },
    });
    const controller = new AbortController();
    const response = await fetch(`${gateway.base}/v1/vms/web-1/smmus/smmu0/events`, {
      headers: { authorization: `Bearer ${gateway.token}`, accept: "text/event-stream" },
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]),
    });
    assert.equal(response.status, 200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await new Promise((r) => setTimeout(r, 300)); // the subscription reaches the service
    // Translate takes the device's physical StreamID (16); the event names the guest's (1).
    const translated = await gateway.rest("POST", "/v1/vms/web-1/smmus/smmu0/translate", {
      streamId: 16,
      iova: "4096",
    });
    assert.notEqual(translated["outcome"], "TRANSLATION_OUTCOME_TRANSLATED", JSON.stringify(translated));
    let text = "";
    while (!/\nevent: *\w+[\s\S]*?\ndata: *\{[^\n]*\n/.test(`\n${text}`)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const data = /data: *(\{[^\n]*)/.exec(text)?.[1];
    assert.ok(data, `an event over SSE, got: ${text}`);
    // A stage-2 translation fault (event 0x10) of the device's virtual StreamID, recorded.
    assert.match(data, /"idName":"F_TRANSLATION","streamId":1,/);
    assert.match(data, /"stage2":true/);
  },
);

test(
  "kill -9 of the interrupt controller, restart: every acknowledged configuration is back",
  { skip },
  async () => {
    const killed = spawnSync("docker", ["kill", "--signal=KILL", host.interrupts.getId()], {
      encoding: "utf8",
    });
    assert.equal(killed.status, 0, killed.stderr);
    const started = spawnSync("docker", ["start", host.interrupts.getId()], { encoding: "utf8" });
    assert.equal(started.status, 0, started.stderr);
    const source = await until(
      "the restarted interrupt controller",
      async () => {
        const response = await fetch(`${gateway.base}/v1/vms/web-1/sources/10`, {
          headers: { authorization: `Bearer ${gateway.token}` },
        });
        return response.ok ? ((await response.json()) as Record<string, Record<string, unknown>>) : undefined;
      },
      60_000,
    );
    assert.deepEqual(
      [source["source"]?.["server"], source["source"]?.["priority"], source["source"]?.["eisn"]],
      [0, 6, 0x42],
    );
    const queue = (await gateway.rest("GET", "/v1/vms/web-1/queues/0/6"))["queue"] as Record<string, unknown>;
    assert.equal(String(queue["qaddr"]), String(QADDR));
    assert.equal(queue["qshift"], 16);
  },
);
