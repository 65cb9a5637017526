import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { Errno } from "@vplane/xive";
import { OS_PAGE, QADDR, controllerSpec, esb, kvmConfig, routedXive, tima } from "./conformance-fixtures.js";
import { failure, suiteHarness, type Harness } from "./service-harness.js";

const queue = (
  fields: Partial<{ flags: number; qshift: number; qaddr: bigint; qtoggle: number; qindex: number }> = {},
) => ({
  flags: 1,
  qshift: 16,
  qaddr: QADDR + 0x10_0000n,
  qtoggle: 1,
  qindex: 0,
  ...fields,
});

/** [what, call, gRPC code, errno, reason] — xive.md §1.1-§1.6 rows. */
type Row = [string, (h: Harness, name: string) => Promise<unknown>, string, number | undefined, string];

const rows: Row[] = [
  [
    "§1.1 connect: vCPU already connected → EBUSY",
    (h, name) => h.call("connectVcpu", { name, vcpuId: 0, server: 1, requestId: "" }),
    "ALREADY_EXISTS",
    Errno.EBUSY,
    "VCPU_ALREADY_CONNECTED",
  ],
  [
    "§1.1 connect: server ≥ nr_servers → EINVAL",
    (h, name) => h.call("connectVcpu", { name, vcpuId: 1, server: 4, requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "SERVER_OUT_OF_RANGE",
  ],
  [
    "§1.1 connect: server taken → EEXIST",
    (h, name) => h.call("connectVcpu", { name, vcpuId: 1, server: 0, requestId: "" }),
    "ALREADY_EXISTS",
    Errno.EEXIST,
    "SERVER_IN_USE",
  ],
  [
    "§1.2 SOURCE: irq ≥ 1,048,576 → E2BIG",
    (h, name) =>
      h.call("initSources", {
        name,
        sources: [{ irq: 1 << 20, levelSensitive: false, asserted: false }],
        requestId: "",
      }),
    "OUT_OF_RANGE",
    Errno.E2BIG,
    "SOURCE_OUT_OF_RANGE",
  ],
  [
    "§1.2 SOURCE_CONFIG: no block → ENOENT",
    (h, name) =>
      h.call("configureSources", {
        name,
        sources: [{ irq: 0x5000, kvmConfig: kvmConfig(0, 6, 1) }],
        requestId: "",
      }),
    "NOT_FOUND",
    Errno.ENOENT,
    "SOURCE_BLOCK_NOT_FOUND",
  ],
  [
    "§1.2 SOURCE_CONFIG: source not valid → EINVAL",
    (h, name) =>
      h.call("configureSources", {
        name,
        sources: [{ irq: 0x1301, kvmConfig: kvmConfig(0, 6, 1) }],
        requestId: "",
      }),
    "FAILED_PRECONDITION",
    Errno.EINVAL,
    "SOURCE_NOT_VALID",
  ],
  [
    "§1.2 SOURCE_CONFIG: priority 7 → EINVAL",
    (h, name) =>
      h.call("configureSources", {
        name,
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(0, 7, 1) }],
        requestId: "",
      }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "PRIORITY_RESERVED",
  ],
  [
    "§1.3 SOURCE_CONFIG: unknown server → EINVAL",
    (h, name) =>
      h.call("configureSources", {
        name,
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(3, 6, 1) }],
        requestId: "",
      }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "SERVER_NOT_CONNECTED",
  ],
  [
    "§1.3 SOURCE_CONFIG: no queue at that priority anywhere → EBUSY",
    (h, name) =>
      h.call("configureSources", {
        name,
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(0, 5, 1) }],
        requestId: "",
      }),
    "RESOURCE_EXHAUSTED",
    Errno.EBUSY,
    "NO_QUEUE_AVAILABLE",
  ],
  [
    "§1.4 EQ_CONFIG: server not connected → ENOENT",
    (h, name) => h.call("configureQueue", { name, server: 2, priority: 5, queue: queue(), requestId: "" }),
    "NOT_FOUND",
    Errno.ENOENT,
    "SERVER_NOT_CONNECTED",
  ],
  [
    "§1.4 EQ_CONFIG: priority 7 → EINVAL",
    (h, name) => h.call("configureQueue", { name, server: 0, priority: 7, queue: queue(), requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "PRIORITY_RESERVED",
  ],
  [
    "§1.4 EQ_CONFIG: flags ≠ ALWAYS_NOTIFY → EINVAL",
    (h, name) =>
      h.call("configureQueue", { name, server: 0, priority: 5, queue: queue({ flags: 0 }), requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_FLAGS_INVALID",
  ],
  [
    "§1.4 EQ_CONFIG: qshift 12 → EINVAL",
    (h, name) =>
      h.call("configureQueue", { name, server: 0, priority: 5, queue: queue({ qshift: 12 }), requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_SIZE_INVALID",
  ],
  [
    "§1.4 EQ_CONFIG: qshift 21 → EINVAL",
    (h, name) =>
      h.call("configureQueue", { name, server: 0, priority: 5, queue: queue({ qshift: 21 }), requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_SIZE_INVALID",
  ],
  [
    "§1.4 EQ_CONFIG: qshift 24 → EINVAL",
    (h, name) =>
      h.call("configureQueue", { name, server: 0, priority: 5, queue: queue({ qshift: 24 }), requestId: "" }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_SIZE_INVALID",
  ],
  [
    "§1.4 EQ_CONFIG: qaddr misaligned → EINVAL",
    (h, name) =>
      h.call("configureQueue", {
        name,
        server: 0,
        priority: 5,
        queue: queue({ qaddr: QADDR + 0x1000n }),
        requestId: "",
      }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_MISALIGNED",
  ],
  [
    "§1.4 EQ_CONFIG: guest page not resolvable → EINVAL",
    (h, name) =>
      h.call("configureQueue", {
        name,
        server: 0,
        priority: 5,
        queue: queue({ qaddr: 1n << 40n }),
        requestId: "",
      }),
    "INVALID_ARGUMENT",
    Errno.EINVAL,
    "EQ_NOT_IN_GUEST_RAM",
  ],
  [
    "§1.2 SOURCE_SYNC: no block → ENOENT",
    (h, name) => h.call("syncSources", { name, irqs: [0x9000] }),
    "NOT_FOUND",
    Errno.ENOENT,
    "SOURCE_BLOCK_NOT_FOUND",
  ],
  [
    "§1.2 SOURCE_SYNC: not valid → EINVAL",
    (h, name) => h.call("syncSources", { name, irqs: [0x1301] }),
    "FAILED_PRECONDITION",
    Errno.EINVAL,
    "SOURCE_NOT_VALID",
  ],
  [
    "§1.6 VP_STATE get: no vCPU context → ENOENT",
    (h, name) => h.call("getVpState", { name, server: 3 }),
    "NOT_FOUND",
    Errno.ENOENT,
    "VCPU_NOT_CONNECTED",
  ],
  [
    "§1.6 VP_STATE set: no vCPU context → ENOENT",
    (h, name) => h.call("setVpState", { name, server: 3, word0: 0n, word1: 0n, requestId: "" }),
    "NOT_FOUND",
    Errno.ENOENT,
    "VCPU_NOT_CONNECTED",
  ],
  [
    "§1.5/A4 ESB page of an invalid source faults",
    (h, name) => h.call("esbAccess", esb(name, 0x1301, 0x800)),
    "FAILED_PRECONDITION",
    Errno.ENXIO,
    "ESB_PAGE_FAULT",
  ],
  [
    "§1.5 TIMA USER page faults (SIGBUS)",
    (h, name) => h.call("timaAccess", tima(name, 0, 0x3_0010, 4, AccessKind.ACCESS_KIND_LOAD)),
    "FAILED_PRECONDITION",
    Errno.ENXIO,
    "TIMA_PAGE_FAULT",
  ],
];

describe("conformance: KVM XIVE device attributes through gRPC — each bad input gives the documented code and errno, and changes nothing", () => {
  const h = suiteHarness();
  let name: string;
  before(async () => {
    name = await routedXive(h, "kvm");
    await h.call("initSources", {
      name,
      sources: [{ irq: 0x1302, levelSensitive: false, asserted: false }],
      requestId: "",
    });
  });

  for (const [what, run, code, errno, reason] of rows) {
    it(what, async () => {
      const before = (await h.call("dumpController", { name })).text;
      const error = await failure(run(h, name));
      assert.deepEqual([error.code, error.errno, error.reason], [code, errno, reason]);
      assert.equal((await h.call("dumpController", { name })).text, before, "no state change");
    });
  }

  it("§1.2 NR_SERVERS: 0 on create means 2048; above KVM_MAX_VCPU_IDS → EINVAL; above KVM_MAX_VCPUS clamped", async () => {
    const spec = (vm: string, nrServers: number) => ({
      controller: controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XIVE, { nrServers }),
      requestId: "",
    });
    assert.equal((await h.call("createController", spec("ns-default", 0))).controller!.nrServers, 2048);
    assert.equal((await h.call("createController", spec("ns-clamped", 16384))).controller!.nrServers, 2048);
    const error = await failure(h.call("createController", spec("ns-bad", 16385)));
    assert.deepEqual([error.code, error.errno], ["INVALID_ARGUMENT", Errno.EINVAL]);
    assert.equal(
      (await failure(h.call("getController", { name: "vms/ns-bad/controller" }))).code,
      "NOT_FOUND",
    );
  });

  it("batches: the first failing entry's index is in the error and the entries before it were applied", async () => {
    const error = await failure(
      h.call("initSources", {
        name,
        sources: [
          { irq: 0x1400, levelSensitive: false, asserted: false },
          { irq: 1 << 21, levelSensitive: false, asserted: false },
          { irq: 0x1401, levelSensitive: false, asserted: false },
        ],
        requestId: "",
      }),
    );
    assert.deepEqual([error.batchIndex, error.errno, error.field], [1, Errno.E2BIG, "sources[1].irq"]);
    assert.equal((await h.call("getSourceConfig", { name, irq: 0x1400 })).source!.pq, 1);
    assert.equal((await failure(h.call("getSourceConfig", { name, irq: 0x1401 }))).code, "NOT_FOUND");
  });

  it("§1.4 EQ_CONFIG get: no page → has_page false; a configured queue reports the live toggle/index", async () => {
    assert.deepEqual(await h.call("getQueueConfig", { name, server: 0, priority: 5 }), {
      hasPage: false,
      queue: undefined,
      entriesWritten: 0n,
    });
    const got = await h.call("getQueueConfig", { name, server: 0, priority: 6 });
    assert.deepEqual(got.queue, { flags: 1, qshift: 16, qaddr: QADDR, qtoggle: 1, qindex: 0 });
  });

  it("§1.3 ConfigureSources reports the effective server", async () => {
    assert.deepEqual(
      (
        await h.call("configureSources", {
          name,
          sources: [{ irq: 0x1302, kvmConfig: kvmConfig(0, 6, 9) }],
          requestId: "",
        })
      ).effectiveServers,
      [0],
    );
    const source = (await h.call("getSourceConfig", { name, irq: 0x1302 })).source!;
    assert.equal(source.kvmConfig, kvmConfig(0, 6, 9));
  });

  it("§1.6 VP state through gRPC: word0 is the OS ring NSR..PIPR", async () => {
    await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, 0xffn));
    assert.deepEqual(await h.call("getVpState", { name, server: 0 }), {
      word0: 0x00ff_0000_ff00_00ffn,
      word1: 0n,
    });
  });

  it("§1.2 EQ_SYNC returns the queue pages it marked dirty", async () => {
    const synced = await h.call("syncQueues", { name });
    // Reported per 64 KiB queue (the 16 written 4 KiB pages of the one queue), QADDR its start.
    assert.equal(synced.pageSize, 65536n);
    assert.deepEqual(synced.dirtyPages, [QADDR]);
  });
});
