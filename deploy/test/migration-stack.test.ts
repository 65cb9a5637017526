// Live migration in containers (issue 6): two hosts' service sets and a gateway on a network
// this test creates. A VM with a delivered interrupt and an active DMA translation moves from
// host "local" to host "b" through the gateway's REST API; on b the queue entry is in b's guest
// RAM, a new trigger lands there, and the SMMU translates and reads the same bytes by DMA.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { encodeKvmSourceConfig } from "@vplane/xive";
import { buildVplaneImage, containerTier } from "./container-runtime.js";
import { ContainerStack, type ContainerHost, type GatewayClient } from "./container-stack.js";

const { skip, missing } = await containerTier();
const MIB = 1024 * 1024;
const QADDR = MIB;
let stack: ContainerStack | undefined;
let local: ContainerHost;
let b: ContainerHost;
let gateway: GatewayClient;

before(
  async () => {
    if (skip) return;
    if (missing) throw new Error(`CI=true and ${missing}`);
    await buildVplaneImage("vplane-migration-test:latest");
    stack = await ContainerStack.start("vplane-migration-test:latest");
    [local, b] = [await stack.host("local"), await stack.host("b")];
    gateway = await stack.gateway(local);
    await gateway.rest("POST", "/v1/hosts", { name: "b", addresses: b.addresses });
  },
  { timeout: 600_000 },
);

after(() => stack?.stop());

const queueWord = (host: ContainerHost, ramPath: string, index: number) =>
  readFileSync(join(host.dataDir, ramPath)).readUInt32BE(QADDR + 4 * index);

test(
  "a VM with live triggers and DMA translation migrates between hosts through the gateway",
  { skip },
  async () => {
    await gateway.finished(
      await gateway.rest("POST", "/v1/vms", {
        name: "mover",
        vcpus: 1,
        memoryBytes: 16 * MIB,
        placement: { host: "local" },
        interruptController: { mode: "xive" },
        iommu: { smmus: [{ name: "smmu0", devices: [{ physicalSid: 16, virtualSid: 1 }] }] },
      }),
    );
    // Interrupts: a source routed to queue (0, 6) and one event delivered.
    await gateway.rest("POST", "/v1/vms/mover/vcpus/connect", { vcpuId: 0, server: 0 });
    await gateway.rest("POST", "/v1/vms/mover/sources/init", { sources: [{ irq: 10 }] });
    await gateway.rest("PUT", "/v1/vms/mover/queues/0/6", {
      queue: { flags: 1, qshift: 16, qaddr: String(QADDR) },
    });
    const kvmConfig = encodeKvmSourceConfig({ server: 0, priority: 6, eisn: 0x42, masked: false });
    await gateway.rest("POST", "/v1/vms/mover/sources/configure", {
      sources: [{ irq: 10, kvmConfig: String(kvmConfig) }],
    });
    const esb = (offset: number) =>
      gateway.rest("POST", "/v1/vms/mover/sources/10/esb", {
        page: "ESB_PAGE_MANAGEMENT",
        offset,
        kind: "ACCESS_KIND_LOAD",
      });
    await esb(0xc00); // SET_PQ_00
    assert.equal(
      (await gateway.rest("POST", "/v1/vms/mover/sources/trigger", { irqs: [10] }))["delivered"],
      1,
    );
    // DMA: stage 1 bypassed, stage 2 maps IOVA 0x10_0000 (64 KiB) onto the queue page.
    await gateway.rest("POST", "/v1/vms/mover/smmus/smmu0/pasid-table/attach", {
      seed: { version: 1, format: 1, basePtr: "0", pasidBits: 0, config: 2, smmuv3Version: 1 },
    });
    await gateway.rest("POST", "/v1/vms/mover/smmus/smmu0/stage2/map", {
      mapping: {
        ipa: String(QADDR),
        hostAddress: String(QADDR),
        size: "65536",
        permission: "STAGE2_PERMISSION_READ_WRITE",
      },
    });
    const before = await gateway.rest("GET", "/v1/vms/mover");
    const wordBefore = queueWord(local, String(before["guestMemoryPath"]), 0);
    assert.equal(wordBefore & 0x7fffffff, 0x42);

    const migrated = await gateway.finished(
      await gateway.rest("POST", "/v1/vms/mover:migrate", { destinationHost: "b" }),
    );
    assert.equal(
      (migrated["metadata"] as Record<string, unknown>)["state"],
      "SUCCEEDED",
      JSON.stringify(migrated),
    );
    const after = await gateway.rest("GET", "/v1/vms/mover");
    assert.equal(after["host"], "b");
    const ramOnB = String(after["guestMemoryPath"]);
    assert.equal(queueWord(b, ramOnB, 0), wordBefore, "the delivered event came over with the RAM");

    // On b: the guest EOIs, a new trigger lands in b's RAM; the SMMU translates and DMA-reads it.
    await esb(0x000);
    assert.equal(
      (await gateway.rest("POST", "/v1/vms/mover/sources/trigger", { irqs: [10] }))["delivered"],
      1,
    );
    assert.equal(queueWord(b, ramOnB, 1) & 0x7fffffff, 0x42, "a trigger on b lands in b's guest RAM");
    const translated = await gateway.rest("POST", "/v1/vms/mover/smmus/smmu0/translate", {
      streamId: 16,
      iova: String(QADDR + 4),
    });
    assert.equal(translated["outcome"], "TRANSLATION_OUTCOME_TRANSLATED", JSON.stringify(translated));
    assert.equal(String(translated["address"]), String(QADDR + 4));
    const read = await gateway.rest("POST", "/v1/vms/mover/smmus/smmu0/dma/read", {
      streamId: 16,
      iova: String(QADDR),
      length: 8,
    });
    const bytes = Buffer.from(String(read["data"]), "base64");
    assert.deepEqual(
      [bytes.readUInt32BE(0), bytes.readUInt32BE(4)],
      [queueWord(b, ramOnB, 0), queueWord(b, ramOnB, 1)],
    );
  },
);
