import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FileGuestMemory } from "@vplane/guest-memory";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { TranslationOutcome, type TranslateResponse } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { buildCommand, decodeSmmuState, encodeSmmuState } from "@vplane/smmuv3";
import { probeNativeSmmu } from "../src/native-probe.js";
import { GuestTables } from "../src/testing/guest-tables.js";
import { collect, startIommu, twoHosts, type IommuHarness } from "./iommu-harness.js";
import { attachSeedTable, attachWithSte, createSmmu } from "./smmu-fixture.js";

const RAM = 64 * 1024 * 1024;
const IOVA = 0x8080_1234;
const PATTERN = Buffer.from("vplane-smmuv3-migrated-dma");
/** smmu0's guest IPA window [BASE, +16 MiB) lives at host [HOST, +16 MiB) of the RAM file. */
const BASE = 0x4000_0000;
const HOST = 0x100_0000;
const LEAF_IPA = BASE + 0x80_3000;
const vmSmmu = (vm: string, id: string) => `vms/${vm}/smmus/${id}`;
const RW = Stage2Permission.STAGE2_PERMISSION_READ_WRITE;

/**
 * VM `vm` as a running guest leaves it, on the RAM file "{vm}.ram": smmu0 with QEMU's ns-nested
 * setup (digest §5.2: CD and tables reached through stage 2) for StreamID 0x30, a device whose
 * stage-1 faults become page requests (0x40, vSID 0x41) and an MSI doorbell; smmu1 with the seed
 * form (ATTACH_PASID_TABLE) over an identity stage 2 for StreamID 1.
 */
async function bootGuest(h: IommuHarness, vm: string): Promise<void> {
  const guestMemory = { path: `${vm}.ram`, sizeBytes: BigInt(RAM) };
  const s0 = await createSmmu(h, vm, "smmu0", { guestMemory });
  const s1 = await createSmmu(h, vm, "smmu1", { guestMemory, mapped: 0x100_0000 });
  const ram = new FileGuestMemory(join(h.dataDir, `${vm}.ram`), RAM);
  try {
    const mapping = { ipa: BigInt(BASE), hostAddress: BigInt(HOST), size: 0x100_0000n, permission: RW };
    await h.call("mapStage2", { name: s0, mapping, requestId: "" });
    const nested = new GuestTables(ram, BASE + 0x10_0000, (ipa) => ipa - BASE + HOST);
    nested.map(IOVA - (IOVA % 4096), LEAF_IPA);
    nested.writeCd(BASE + 0x8000, 2);
    await attachWithSte(h, s0, {
      streamId: 0x30,
      virtualStreamId: 0x30,
      config: 5,
      contextPtr: BASE + 0x8000,
    });
    const pri = new GuestTables(ram, BASE + 0x20_0000, (ipa) => ipa - BASE + HOST);
    pri.writeCd(BASE + 0x8040, 3);
    await attachWithSte(h, s0, {
      streamId: 0x40,
      virtualStreamId: 0x41,
      pageRequests: true,
      config: 5,
      contextPtr: BASE + 0x8040,
    });
    await h.call("bindMsi", {
      name: s0,
      binding: { iova: 0xfee0_0000n, gpa: 0x0800_0000n, size: 0x1000n },
      requestId: "",
    });

    const seed = new GuestTables(ram, 0x20_0000);
    seed.map(IOVA - (IOVA % 4096), 0x80_0000);
    seed.writeCd(0x8000, 4);
    await h.call("attachDevice", {
      name: s1,
      streamId: 1,
      virtualStreamId: 1,
      pageRequests: false,
      requestId: "",
    });
    await attachSeedTable(h, s1, 1);
  } finally {
    ram.close();
  }
}

/** What a translation answers, without whether the IOTLB served it. */
function answer(t: TranslateResponse): unknown {
  return { ...t, iotlbHit: undefined };
}

const translate = (h: IommuHarness, name: string, streamId: number, iova: number, write = false) =>
  h.call("translate", { name, streamId, iova: BigInt(iova), write });

describe("DeviceStateService: SMMUv3 migrated between two service instances (issue 6)", () => {
  const hosts = twoHosts();
  const s0 = vmSmmu("vm-a", "smmu0");
  const s1 = vmSmmu("vm-a", "smmu1");
  let sections: DeviceSection[];
  let cookie: number;

  it("QuiesceDevices: NOT_FOUND for a VM without SMMUs here, INVALID_ARGUMENT for a bad id", async () => {
    const missing = await hosts.source.dsFailure("quiesceDevices", { vm: "vm-a" });
    assert.deepEqual([missing.code, missing.reason, missing.field], ["NOT_FOUND", "SMMU_NOT_FOUND", "vm"]);
    const bad = await hosts.source.dsFailure("quiesceDevices", { vm: "Bad Id" });
    assert.deepEqual([bad.code, bad.field], ["INVALID_ARGUMENT", "vm"]);
  });

  it("a running guest: export is FAILED_PRECONDITION until quiesced; quiesce reports the page its DMA wrote, idempotently", async () => {
    const { source } = hosts;
    await bootGuest(source, "vm-a");
    const stream = collect(source.client, { name: s0, fromSequence: 0n });
    const fault = await translate(source, s0, 0x30, IOVA + 0x20_0000);
    assert.equal(fault.event?.idName, "F_TRANSLATION");
    assert.equal((await stream.next(1))[0]?.sequence, 0n);
    const dma = await source.call("dmaWrite", {
      name: s0,
      streamId: 0x30,
      iova: BigInt(IOVA),
      data: PATTERN,
    });
    assert.equal(dma.outcome, TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED);

    const early = await source.dsFailure("exportDeviceState", { vm: "vm-a" });
    assert.deepEqual([early.code, early.reason], ["FAILED_PRECONDITION", "SMMU_NOT_QUIESCED"]);
    const quiesced = await source.ds("quiesceDevices", { vm: "vm-a" });
    assert.deepEqual(quiesced, { dirtyPages: [BigInt(LEAF_IPA - BASE + HOST)], pageSize: 4096n });
    assert.deepEqual(await source.ds("quiesceDevices", { vm: "vm-a" }), quiesced);

    // Held while stopped: a fault's event and a page request reach no stream.
    const held = await translate(source, s0, 0x30, IOVA + 0x40_0000, true);
    assert.deepEqual([held.event?.idName, held.recorded], ["F_TRANSLATION", true]);
    const request = await translate(source, s0, 0x40, IOVA);
    assert.equal(request.outcome, TranslationOutcome.TRANSLATION_OUTCOME_PAGE_REQUEST);
    cookie = request.pageRequest!.cookie;
    await sleep(100);
    assert.equal(stream.messages.length, 1);
    stream.cancel();
  });

  it("while quiesced: configuration, guest calls and DMA writes are FAILED_PRECONDITION SMMU_QUIESCED; translation runs", async () => {
    const { source } = hosts;
    const refused = [
      await source.failure("mapStage2", {
        name: s0,
        mapping: { ipa: 0n, hostAddress: 0n, size: 0x1000n, permission: RW },
        requestId: "",
      }),
      await source.failure("attachDevice", {
        name: s0,
        streamId: 9,
        virtualStreamId: 9,
        pageRequests: false,
        requestId: "",
      }),
      await source.failure("invalidate", {
        name: s0,
        entries: [{ entry: { $case: "raw", value: { cmd0: buildCommand.nhAll()[0], cmd1: 0n } } }],
        requestId: "",
      }),
      await source.failure("respondPageRequest", { name: s0, cookie, code: 0, requestId: "" }),
      await source.failure("dmaWrite", { name: s0, streamId: 0x30, iova: BigInt(IOVA), data: PATTERN }),
      await source.failure("unbindMsi", { name: s0, iova: 0xfee0_0000n, requestId: "" }),
    ];
    for (const e of refused)
      assert.deepEqual([e.code, e.reason], ["FAILED_PRECONDITION", "SMMU_QUIESCED"], e.message);
    const t = await translate(source, s0, 0x30, IOVA);
    assert.equal(t.address, BigInt(LEAF_IPA - BASE + HOST + (IOVA & 0xfff)));
  });

  it("ExportDeviceState: one 'smmuv3' section per SMMU of the VM, format version 1", async () => {
    ({ sections } = await hosts.source.ds("exportDeviceState", { vm: "vm-a" }));
    assert.deepEqual(
      sections.map((s) => [s.kind, s.device, s.formatVersion]),
      [
        ["smmuv3", s0, 1],
        ["smmuv3", s1, 1],
      ],
    );
  });

  it("imported on the other host with a copy of the RAM file and resumed: same translations and DMA, held event and page request delivered", async () => {
    const { source, destination } = hosts;
    copyFileSync(join(source.dataDir, "vm-a.ram"), join(destination.dataDir, "vm-a.ram"));
    const imported = await destination.ds("importDeviceState", {
      vm: "vm-a",
      sections,
      guestMemory: { path: "vm-a.ram", sizeBytes: BigInt(RAM) },
      requestId: "import-1",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    assert.deepEqual(imported.devices, [s0, s1]);
    const stillStopped = await destination.failure("respondPageRequest", {
      name: s0,
      cookie,
      code: 0,
      requestId: "",
    });
    assert.equal(stillStopped.reason, "SMMU_QUIESCED");

    // The stream continues the source's sequence: the source delivered message 0.
    const stream = collect(destination.client, { name: s0, fromSequence: 1n });
    await destination.ds("resumeDevices", { vm: "vm-a" });
    await destination.ds("resumeDevices", { vm: "vm-a" }); // idempotent
    const [event, request] = await stream.next(2);
    assert.equal(event?.sequence, 1n);
    assert.deepEqual(
      event?.kind?.$case === "event" && [event.kind.value.record?.idName, event.kind.value.veventqSequence],
      ["F_TRANSLATION", 1],
    );
    assert.deepEqual(
      request?.kind?.$case === "pageRequest" && [
        request.sequence,
        request.kind.value.cookie,
        request.kind.value.virtualStreamId,
      ],
      [2n, cookie, 0x41],
    );

    for (const [name, sid, iova, write] of [
      [s0, 0x30, IOVA, false],
      [s0, 0x30, IOVA, true],
      [s0, 0x30, IOVA + 0x40_0000, false],
      [s1, 1, IOVA + 8, false],
    ] as const) {
      const there = await translate(destination, name, sid, iova, write);
      assert.deepEqual(answer(there), answer(await translate(source, name, sid, iova, write)));
    }
    const first = await translate(destination, s1, 1, IOVA + 0x10);
    assert.deepEqual([first.address, first.iotlbHit], [0x80_0244n, true]);
    const read = { name: s0, streamId: 0x30, iova: BigInt(IOVA), length: PATTERN.length };
    assert.deepEqual((await destination.call("dmaRead", read)).data, PATTERN);
    assert.deepEqual(
      (await destination.call("dmaRead", read)).data,
      (await source.call("dmaRead", read)).data,
    );
    const written = await destination.call("dmaWrite", {
      name: s0,
      streamId: 0x30,
      iova: BigInt(IOVA),
      data: Buffer.from("after"),
    });
    assert.equal(written.outcome, TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED);
    await destination.call("respondPageRequest", { name: s0, cookie, code: 0, requestId: "" });
    stream.cancel();
  });

  it("a retried import (same request_id) answers the same; another is ALREADY_EXISTS", async () => {
    const request = {
      vm: "vm-a",
      sections,
      guestMemory: { path: "vm-a.ram", sizeBytes: BigInt(RAM) },
      requestId: "import-1",
      backend: Backend.BACKEND_UNSPECIFIED,
    };
    assert.deepEqual((await hosts.destination.ds("importDeviceState", request)).devices, [s0, s1]);
    const again = await hosts.destination.dsFailure("importDeviceState", {
      ...request,
      requestId: "import-2",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    assert.deepEqual([again.code, again.reason, again.field], ["ALREADY_EXISTS", "SMMU_EXISTS", "vm"]);
  });

  it("ReleaseDevices on the source deletes the VM's SMMUs (NOT_FOUND after)", async () => {
    const { source } = hosts;
    assert.deepEqual((await source.ds("releaseDevices", { vm: "vm-a" })).devices, [s0, s1]);
    assert.equal((await source.failure("getSmmu", { name: s0 })).code, "NOT_FOUND");
    assert.equal((await source.dsFailure("releaseDevices", { vm: "vm-a" })).code, "NOT_FOUND");
  });

  it("the imported SMMUs are durable: a restarted destination translates as before", async () => {
    const before = await translate(hosts.destination, s0, 0x30, IOVA);
    const seedBefore = await translate(hosts.destination, s1, 1, IOVA);
    await hosts.destination.stop();
    hosts.destination = await startIommu(hosts.destination.dataDir);
    const { destination } = hosts;
    assert.deepEqual(answer(await translate(destination, s0, 0x30, IOVA)), answer(before));
    assert.deepEqual(answer(await translate(destination, s1, 1, IOVA)), answer(seedBefore));
    const dump = JSON.parse((await destination.call("dumpSmmu", { name: s0 })).text) as {
      devices: { streamId: number; virtualStreamId: number; pageRequests: boolean }[];
      msiBinding: { giova: number };
      quiesced: boolean;
    };
    assert.deepEqual(
      dump.devices.map((d) => [d.streamId, d.virtualStreamId, d.pageRequests]),
      [
        [0x30, 0x30, false],
        [0x40, 0x41, true],
      ],
    );
    assert.deepEqual([dump.msiBinding.giova, dump.quiesced], [0xfee0_0000, false]);
  });
});

describe("DeviceStateService: refused sections leave nothing behind", () => {
  const hosts = twoHosts();
  let good: DeviceSection[];
  before(async () => {
    await bootGuest(hosts.source, "vm-b");
    await translate(hosts.source, vmSmmu("vm-b", "smmu0"), 0x30, IOVA + 0x20_0000);
    await hosts.source.ds("quiesceDevices", { vm: "vm-b" });
    good = (await hosts.source.ds("exportDeviceState", { vm: "vm-b" })).sections;
  });

  const importing = (sections: DeviceSection[], fields: { vm?: string; sizeBytes?: bigint } = {}) =>
    hosts.destination.dsFailure("importDeviceState", {
      vm: fields.vm ?? "vm-b",
      sections,
      guestMemory: { path: "", sizeBytes: fields.sizeBytes ?? 0n },
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
  const listed = async () =>
    (await hosts.destination.call("listSmmus", { parent: "", pageSize: 0, pageToken: "" })).smmus;

  it("wrong version, truncated, garbage, wrong kind, another VM's or a repeated section, another RAM size: INVALID_ARGUMENT naming it", async () => {
    const [a, b] = good as [DeviceSection, DeviceSection];
    const versionTwo = Buffer.from(a.payload);
    versionTwo.writeUInt32LE(2, 0);
    const inconsistent = decodeSmmuState(b.payload);
    inconsistent.mappings[0]!.hostAddress = RAM;
    const deep = decodeSmmuState(a.payload);
    deep.eventQueueDepth = 1 << 20;
    const cases: [DeviceSection[], string, string, { sizeBytes?: bigint }?][] = [
      [[{ ...a, formatVersion: 2 }, b], "STATE_VERSION_UNSUPPORTED", "sections[0].format_version"],
      [[{ ...a, payload: versionTwo }, b], "STATE_VERSION_UNSUPPORTED", "sections[0].payload.format_version"],
      [
        [a, { ...b, payload: b.payload.subarray(0, 3) }],
        "STATE_TRUNCATED",
        "sections[1].payload.format_version",
      ],
      [
        [a, { ...b, payload: b.payload.subarray(0, b.payload.length - 1) }],
        "STATE_TRUNCATED",
        "sections[1].payload.page_requests.count",
      ],
      [[{ ...a, kind: "xive" }, b], "UNKNOWN_DEVICE_KIND", "sections[0].kind"],
      [[a, { ...b, device: "vms/other/smmus/smmu1" }], "SECTION_OF_ANOTHER_DEVICE", "sections[1].device"],
      [[a, { ...b, device: "vms/vm-b/controller" }], "SECTION_OF_ANOTHER_DEVICE", "sections[1].device"],
      [[a, a], "SECTION_DUPLICATE", "sections[1].device"],
      [[], "SECTIONS_MISSING", "sections"],
      [
        [a, { ...b, payload: Buffer.from(encodeSmmuState(inconsistent)) }],
        "STATE_INCONSISTENT",
        "sections[1].payload.mappings[0].hostAddress",
      ],
      [
        [{ ...a, payload: Buffer.from(encodeSmmuState(deep)) }],
        "STATE_LIMITS_UNSUPPORTED",
        "sections[0].payload.event_queue_depth",
      ],
      [good, "GUEST_MEMORY_SIZE_MISMATCH", "guest_memory.size_bytes", { sizeBytes: 2n * BigInt(RAM) }],
    ];
    for (const [sections, reason, field, fields] of cases) {
      const e = await importing(sections, fields);
      assert.deepEqual([e.code, e.reason, e.field], ["INVALID_ARGUMENT", reason, field], e.message);
    }
    const garbage = Buffer.from(b.payload);
    garbage.fill(0xa5, 8);
    const e = await importing([a, { ...b, payload: garbage }]);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.field ?? "", /^sections\[1\]\.payload\./);
    assert.deepEqual(await listed(), []);
  });

  it("into the NATIVE backend on a host that cannot offer it: FAILED_PRECONDITION with the probe's reason, nothing made; an unknown backend: INVALID_ARGUMENT", async () => {
    const request = { vm: "vm-b", sections: good, guestMemory: undefined, requestId: "" };
    const native = await hosts.destination.dsFailure("importDeviceState", {
      ...request,
      backend: Backend.BACKEND_NATIVE,
    });
    const probe = probeNativeSmmu();
    assert.equal(probe.available, false, "this test runs where the native SMMU is unavailable");
    assert.deepEqual(
      [native.code, native.reason, native.field],
      ["FAILED_PRECONDITION", probe.unavailableCode, "backend"],
    );
    const unknown = await hosts.destination.dsFailure("importDeviceState", {
      ...request,
      backend: 7 as Backend,
    });
    assert.deepEqual(
      [unknown.code, unknown.reason, unknown.field],
      ["INVALID_ARGUMENT", "BACKEND_INVALID", "backend"],
    );
    assert.deepEqual(await listed(), []);
  });

  it("nothing reached the store either: a restarted destination holds no SMMU", async () => {
    await hosts.destination.stop();
    hosts.destination = await startIommu(hosts.destination.dataDir);
    assert.deepEqual(await listed(), []);
    const missing = await hosts.destination.dsFailure("resumeDevices", { vm: "vm-b" });
    assert.deepEqual([missing.code, missing.field], ["NOT_FOUND", "vm"]);
  });

  it("good sections into private RAM of the state's size (no path, no size) are accepted", async () => {
    const { devices } = await hosts.destination.ds("importDeviceState", {
      vm: "vm-b",
      sections: good,
      guestMemory: undefined,
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    assert.deepEqual(devices, [vmSmmu("vm-b", "smmu0"), vmSmmu("vm-b", "smmu1")]);
    const { smmu } = await hosts.destination.call("getSmmu", { name: devices[0]! });
    assert.deepEqual(smmu?.guestMemory, { path: "", sizeBytes: BigInt(RAM) });
    assert.equal((await hosts.destination.dsFailure("exportDeviceState", { vm: "bad id" })).field, "vm");
  });
});

describe("a live migration's export (issue 17 point 1): what would change the sent state is refused, naming the destination", () => {
  const hosts = twoHosts();
  const s0 = vmSmmu("vm-a", "smmu0");
  const destination = "10.0.0.2:50053";
  const read = { name: s0, streamId: 0x30, iova: BigInt(IOVA), length: 4 };
  const refusedHere = async () => {
    const { source } = hosts;
    // A fault, a page request or a DMA here would be held in (or change) a state already sent.
    for (const e of [
      await source.failure("translate", { name: s0, streamId: 0x30, iova: BigInt(IOVA), write: false }),
      await source.failure("dmaRead", read),
      await source.failure("respondPageRequest", { name: s0, cookie: 1, code: 0, requestId: "" }),
    ])
      assert.deepEqual(
        [e.code, e.reason, e.metadata?.["destination"]],
        ["UNAVAILABLE", "VM_MIGRATING", destination],
      );
  };

  it("UNAVAILABLE VM_MIGRATING from the export until the devices resume here, and after they are released", async () => {
    const { source } = hosts;
    await bootGuest(source, "vm-a");
    await source.ds("quiesceDevices", { vm: "vm-a" });
    await source.ds("exportDeviceState", { vm: "vm-a", destination });
    await refusedHere();
    await source.ds("resumeDevices", { vm: "vm-a" }); // the migration failed: the VM goes on here
    assert.equal((await source.call("dmaRead", read)).data.length, 4);
    await source.ds("quiesceDevices", { vm: "vm-a" });
    await source.ds("exportDeviceState", { vm: "vm-a", destination });
    await source.ds("releaseDevices", { vm: "vm-a" }); // the migration completed
    await refusedHere();
  });
});
