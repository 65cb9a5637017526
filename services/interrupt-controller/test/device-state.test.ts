import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, RtasCall } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { OS_PAGE, controllerSpec, kvmConfig, tima } from "./conformance-fixtures.js";
import { startHost, twoHosts } from "./device-state-host.js";
import { failure } from "./service-harness.js";
import {
  AFTER,
  BEFORE,
  QUEUES,
  RAM,
  ROUTES,
  STOPPED_ON_DESTINATION,
  STOPPED_ON_SOURCE,
  bootXive,
  name,
  observe,
  run,
} from "./xive-guest.js";

describe("DeviceStateService: XIVE migrated between two service instances (issue 6, xive.md §6)", () => {
  const hosts = twoHosts();
  let section: DeviceSection;

  it("QuiesceDevices: NOT_FOUND for a VM without a controller; the queue pages the guest's events were written to, ascending; idempotent", async () => {
    const missing = await failure(hosts.source.ds("quiesceDevices", { vm: "vm-a" }));
    assert.deepEqual(
      [missing.code, missing.reason, missing.field],
      ["NOT_FOUND", "CONTROLLER_NOT_FOUND", "vm"],
    );
    await bootXive(hosts.source, "vm-a");
    await run(hosts.source, "vm-a", BEFORE);
    const exportedEarly = await failure(hosts.source.ds("exportDeviceState", { vm: "vm-a" }));
    assert.deepEqual(
      [exportedEarly.code, exportedEarly.reason],
      ["FAILED_PRECONDITION", "CONTROLLER_NOT_QUIESCED"],
    );
    const quiesced = await hosts.source.ds("quiesceDevices", { vm: "vm-a" });
    const pageSize = Number(quiesced.pageSize);
    assert.equal(pageSize, 0x1_0000, "dirty pages are reported per 64 KiB queue");
    const expected = QUEUES.flatMap((q) =>
      Array.from({ length: 0x1_0000 / pageSize }, (_, i) => q.qaddr + BigInt(i * pageSize)),
    );
    assert.deepEqual(quiesced.dirtyPages, expected);
    assert.deepEqual(await hosts.source.ds("quiesceDevices", { vm: "vm-a" }), quiesced);
  });

  it("while quiesced: device triggers are latched, the guest's pages and configuration are refused", async () => {
    const counts = await hosts.source.ic("triggerSources", { name: name("vm-a"), irqs: [0x1300] });
    assert.deepEqual(counts, { delivered: 0, coalesced: 1, masked: 0, dropped: 0 });
    await run(hosts.source, "vm-a", STOPPED_ON_SOURCE.slice(1));
    const refused = await failure(
      hosts.source.ic("timaAccess", tima(name("vm-a"), 0, OS_PAGE + 0x810, 2, AccessKind.ACCESS_KIND_LOAD)),
    );
    assert.deepEqual([refused.code, refused.reason], ["FAILED_PRECONDITION", "CONTROLLER_QUIESCED"]);
    const config = await failure(
      hosts.source.ic("configureSources", {
        name: name("vm-a"),
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(1, 5, 1) }],
        requestId: "",
      }),
    );
    assert.equal(config.reason, "CONTROLLER_QUIESCED");
  });

  it("ExportDeviceState: one 'xive' section for vms/{vm}/controller, format version 1", async () => {
    const { sections } = await hosts.source.ds("exportDeviceState", { vm: "vm-a" });
    assert.equal(sections.length, 1);
    section = sections[0]!;
    assert.deepEqual(
      [section.kind, section.device, section.formatVersion],
      ["xive", "vms/vm-a/controller", 1],
    );
  });

  it("ImportDeviceState on the other host with a copy of the RAM file, ResumeDevices: the guest continues exactly", async () => {
    copyFileSync(join(hosts.source.dataDir, "vm-a.ram"), join(hosts.destination.dataDir, "vm-a.ram"));
    const sourceVp = await hosts.source.ic("getVpState", { name: name("vm-a"), server: 0 });
    const imported = await hosts.destination.ds("importDeviceState", {
      vm: "vm-a",
      sections: [section],
      guestMemory: { path: "vm-a.ram", sizeBytes: RAM },
      requestId: "import-1",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    assert.deepEqual(imported.devices, ["vms/vm-a/controller"]);
    assert.deepEqual(await hosts.destination.ic("getVpState", { name: name("vm-a"), server: 0 }), sourceVp);
    // Server 0 acknowledged at priority 6 (CPPR 6) and has a priority-6 event pending; server 1 is interrupted.
    const nsr = [];
    for (const server of [0, 1])
      nsr.push((await hosts.destination.ic("getVpState", { name: name("vm-a"), server })).word0 >> 56n);
    assert.deepEqual(nsr, [0n, 0x80n], "the NSR exception bits arrive with the state");

    await run(hosts.destination, "vm-a", STOPPED_ON_DESTINATION);
    await hosts.destination.ds("resumeDevices", { vm: "vm-a" });
    await run(hosts.destination, "vm-a", AFTER);

    // The same guest on the source host, never migrated.
    await bootXive(hosts.source, "vm-ref");
    await run(hosts.source, "vm-ref", [...BEFORE, ...STOPPED_ON_SOURCE, ...STOPPED_ON_DESTINATION, ...AFTER]);
    const expected = await observe(hosts.source, "vm-ref");
    assert.deepEqual(await observe(hosts.destination, "vm-a"), expected);
    assert.deepEqual(
      expected.words[0]!.slice(0, 5),
      [0x8000_1300, 0x8000_1300, 0x8000_1200, 0x8000_1300, 0x8000_1300],
    );
    assert.deepEqual(expected.words[1]!.slice(0, 3), [0x8000_1301, 0x8000_1301, 0]);
  });

  it("a retried import (same request_id) answers the same; another is ALREADY_EXISTS", async () => {
    const request = {
      vm: "vm-a",
      sections: [section],
      guestMemory: { path: "vm-a.ram", sizeBytes: RAM },
      requestId: "import-1",
      backend: Backend.BACKEND_UNSPECIFIED,
    };
    assert.deepEqual((await hosts.destination.ds("importDeviceState", request)).devices, [
      "vms/vm-a/controller",
    ]);
    const again = await failure(
      hosts.destination.ds("importDeviceState", { ...request, requestId: "import-2" }),
    );
    assert.deepEqual([again.code, again.reason], ["ALREADY_EXISTS", "CONTROLLER_EXISTS"]);
  });

  it("ReleaseDevices on the source deletes the controller (NOT_FOUND after)", async () => {
    assert.deepEqual((await hosts.source.ds("releaseDevices", { vm: "vm-a" })).devices, [
      "vms/vm-a/controller",
    ]);
    assert.equal((await failure(hosts.source.ic("getController", { name: name("vm-a") }))).code, "NOT_FOUND");
    assert.equal((await failure(hosts.source.ds("releaseDevices", { vm: "vm-a" }))).code, "NOT_FOUND");
  });

  it("the imported controller is durable: a restarted destination still has its vCPUs, queues and routes", async () => {
    await hosts.destination.stop();
    hosts.destination = await startHost(hosts.destination.dataDir);
    const { controller } = await hosts.destination.ic("getController", { name: name("vm-a") });
    assert.deepEqual([controller?.connectedServers, controller?.sourceCount], [[0, 1], 3]);
    for (const [irq, server, priority] of ROUTES) {
      const s = (await hosts.destination.ic("getSourceConfig", { name: name("vm-a"), irq })).source!;
      assert.deepEqual([s.masked, s.server, s.priority, s.eisn], [false, server, priority, irq]);
    }
    for (const q of QUEUES) {
      const got = await hosts.destination.ic("getQueueConfig", {
        name: name("vm-a"),
        server: q.server,
        priority: q.priority,
      });
      assert.deepEqual([got.hasPage, got.queue?.qaddr], [true, q.qaddr]);
    }
  });

  it("what the guest changes after the import wins over the imported state on a restart; a RESET keeps no imported queue", async () => {
    const n = name("vm-a");
    const host = () => hosts.destination;
    const restart = async () => {
      await host().stop();
      hosts.destination = await startHost(host().dataDir);
    };
    const queue = async (server: number, priority: number) =>
      (await host().ic("getQueueConfig", { name: n, server, priority })).hasPage;
    // EQ_CONFIG with qshift 0 tears the queue down (xive.md §1.4); SOURCE_CONFIG re-targets 0x1301.
    await host().ic("configureQueue", {
      name: n,
      server: 1,
      priority: 5,
      queue: { flags: 0, qshift: 0, qaddr: 0n, qtoggle: 0, qindex: 0 },
      requestId: "",
    });
    await host().ic("configureSources", {
      name: n,
      sources: [{ irq: 0x1301, kvmConfig: kvmConfig(0, 6, 0x77) }],
      requestId: "",
    });
    await restart();
    assert.deepEqual([await queue(0, 6), await queue(1, 5)], [true, false]);
    const s = (await host().ic("getSourceConfig", { name: n, irq: 0x1301 })).source!;
    assert.deepEqual([s.server, s.priority, s.eisn], [0, 6, 0x77]);
    // KVM_DEV_XIVE_RESET tears every queue down (xive.md §1.2): the imported (0, 6) stays gone.
    await host().ic("resetController", { name: n, requestId: "" });
    await restart();
    assert.deepEqual([await queue(0, 6), await queue(1, 5)], [false, false]);
    const { controller } = await host().ic("getController", { name: n });
    assert.deepEqual([controller?.connectedServers, controller?.sourceCount], [[0, 1], 3]);
  });
});

describe("DeviceStateService: refused sections leave nothing behind", () => {
  const hosts = twoHosts();
  let good: DeviceSection;
  before(async () => {
    await bootXive(hosts.source, "vm-b");
    await run(hosts.source, "vm-b", [["trigger", 0x1300]]);
    await hosts.source.ds("quiesceDevices", { vm: "vm-b" });
    good = (await hosts.source.ds("exportDeviceState", { vm: "vm-b" })).sections[0]!;
  });

  const importing = (sections: DeviceSection[], fields: { vm?: string; sizeBytes?: bigint } = {}) =>
    failure(
      hosts.destination.ds("importDeviceState", {
        vm: fields.vm ?? "vm-b",
        sections,
        guestMemory: { path: "", sizeBytes: fields.sizeBytes ?? 0n },
        requestId: "",
        backend: Backend.BACKEND_UNSPECIFIED,
      }),
    );

  it("wrong version, truncated, garbage, wrong kind, another VM's section, another RAM size: INVALID_ARGUMENT", async () => {
    const payload = (bytes: Uint8Array) => Buffer.from(bytes);
    const versionTwo = Buffer.from(good.payload);
    versionTwo.writeUInt32BE(2, 0);
    const cases: [DeviceSection[], string, string, { sizeBytes?: bigint }?][] = [
      [[{ ...good, formatVersion: 2 }], "STATE_VERSION_UNSUPPORTED", "sections[0].format_version"],
      [[{ ...good, payload: versionTwo }], "STATE_VERSION_UNSUPPORTED", "sections[0].payload.format_version"],
      [
        [{ ...good, payload: good.payload.subarray(0, good.payload.length - 7) }],
        "STATE_TRUNCATED",
        "sections[0].payload.xive.contexts",
      ],
      [
        [{ ...good, payload: payload(new Uint8Array(3)) }],
        "STATE_TRUNCATED",
        "sections[0].payload.format_version",
      ],
      [
        [{ ...good, payload: payload(Uint8Array.from({ length: 200 }, (_, i) => (i * 151) & 0xff)) }],
        "STATE_VERSION_UNSUPPORTED",
        "sections[0].payload.format_version",
      ],
      [[{ ...good, kind: "smmuv3" }], "UNKNOWN_DEVICE_KIND", "sections[0].kind"],
      [[{ ...good, kind: "xics" }], "SECTION_KIND_MISMATCH", "sections[0].kind"],
      [[{ ...good, device: "vms/other/controller" }], "SECTION_OF_ANOTHER_DEVICE", "sections[0].device"],
      [[good, good], "SECTION_UNEXPECTED", "sections[1]"],
      [[], "SECTIONS_MISSING", "sections"],
      [[good], "GUEST_MEMORY_SIZE_MISMATCH", "guest_memory.size_bytes", { sizeBytes: 2n * RAM }],
    ];
    for (const [sections, reason, field, fields] of cases) {
      const e = await importing(sections, fields);
      assert.deepEqual([e.code, e.reason, e.field], ["INVALID_ARGUMENT", reason, field], e.message);
    }
    const garbage = Buffer.from(good.payload);
    garbage.fill(0xa5, 8);
    const e = await importing([{ ...good, payload: garbage }]);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.field ?? "", /^sections\[0\]\.payload\./);
    assert.deepEqual(
      (await hosts.destination.ic("listControllers", { pageSize: 0, pageToken: "" })).controllers,
      [],
    );
  });

  it("an import into NATIVE on a host without the KVM XIVE device: FAILED_PRECONDITION with GetCapabilities' reason (never quietly emulated), nothing left", async (t) => {
    const { capabilities } = await hosts.destination.ic("getCapabilities", {});
    const native = capabilities!.backends.find((b) => b.backend === Backend.BACKEND_NATIVE)!;
    if (native.available) {
      t.skip("this host has the KVM XIVE device (the POWER9 kernel tier imports into it)");
      return;
    }
    const e = await failure(
      hosts.destination.ds("importDeviceState", {
        vm: "vm-b",
        sections: [good],
        guestMemory: { path: "vm-b.ram", sizeBytes: 0n },
        requestId: "",
        backend: Backend.BACKEND_NATIVE,
      }),
    );
    assert.deepEqual([e.code, e.reason, e.field], ["FAILED_PRECONDITION", native.unavailableCode, "backend"]);
    assert.deepEqual(
      (await hosts.destination.ic("listControllers", { pageSize: 0, pageToken: "" })).controllers,
      [],
    );
  });

  it("an import into an unknown backend: INVALID_ARGUMENT BACKEND_INVALID", async () => {
    const e = await failure(
      hosts.destination.ds("importDeviceState", {
        vm: "vm-b",
        sections: [good],
        guestMemory: undefined,
        requestId: "",
        backend: 7 as Backend,
      }),
    );
    assert.deepEqual([e.code, e.reason, e.field], ["INVALID_ARGUMENT", "BACKEND_INVALID", "backend"]);
  });

  it("nothing reached the store either: a restarted destination holds no controller", async () => {
    await hosts.destination.stop();
    hosts.destination = await startHost(hosts.destination.dataDir);
    assert.deepEqual(
      (await hosts.destination.ic("listControllers", { pageSize: 0, pageToken: "" })).controllers,
      [],
    );
    const missing = await failure(hosts.destination.ds("resumeDevices", { vm: "vm-b" }));
    assert.deepEqual([missing.code, missing.field], ["NOT_FOUND", "vm"]);
  });

  it("a good section into private RAM of the state's size (no path, no size) is accepted", async () => {
    const { devices } = await hosts.destination.ds("importDeviceState", {
      vm: "vm-b",
      sections: [good],
      guestMemory: undefined,
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    assert.deepEqual(devices, ["vms/vm-b/controller"]);
    const { controller } = await hosts.destination.ic("getController", { name: name("vm-b") });
    assert.equal(controller?.guestMemory?.sizeBytes, RAM);
    assert.equal((await failure(hosts.destination.ds("exportDeviceState", { vm: "bad id" }))).field, "vm");
  });
});

describe("DeviceStateService: XICS", () => {
  const hosts = twoHosts();

  it("an 'xics' section: a source triggered while stopped is presented on the destination after resume", async () => {
    const n = name("vm-x");
    await hosts.source.ic("createController", {
      controller: controllerSpec("vm-x", ControllerMode.CONTROLLER_MODE_XICS),
      requestId: "",
    });
    await hosts.source.ic("connectVcpu", { name: n, vcpuId: 0, server: 0, requestId: "" });
    await hosts.source.ic("initSources", {
      name: n,
      sources: [{ irq: 0x1300, levelSensitive: false, asserted: false }],
      requestId: "",
    });
    await hosts.source.ic("callRtas", {
      name: n,
      call: RtasCall.RTAS_CALL_SET_XIVE,
      irq: 0x1300,
      server: 0,
      priority: 5,
    });
    await hosts.source.ic("rawHypercall", {
      name: n,
      server: 0,
      opcode: 0x68n,
      args: [0xffn],
      failOnError: true,
    }); // H_CPPR
    const quiesced = await hosts.source.ds("quiesceDevices", { vm: "vm-x" });
    assert.deepEqual(quiesced.dirtyPages, []);
    await hosts.source.ic("triggerSources", { name: n, irqs: [0x1300] });
    const { sections } = await hosts.source.ds("exportDeviceState", { vm: "vm-x" });
    assert.deepEqual([sections[0]?.kind, sections[0]?.device], ["xics", n]);
    await hosts.destination.ds("importDeviceState", {
      vm: "vm-x",
      sections,
      guestMemory: undefined,
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    const refused = await failure(
      hosts.destination.ic("rawHypercall", {
        name: n,
        server: 0,
        opcode: 0x74n,
        args: [],
        failOnError: false,
      }),
    );
    assert.equal(refused.reason, "CONTROLLER_QUIESCED");
    await hosts.destination.ds("resumeDevices", { vm: "vm-x" });
    await hosts.destination.ds("resumeDevices", { vm: "vm-x" }); // idempotent
    const xirr = await hosts.destination.ic("rawHypercall", {
      name: n,
      server: 0,
      opcode: 0x74n,
      args: [],
      failOnError: true,
    });
    assert.deepEqual(xirr.outputs, [0xff00_1300n]);
  });

  it("DUAL with XIVE selected at CAS: imported as such, and the choice survives a destination restart", async () => {
    const n = name("vm-d");
    const spec = controllerSpec("vm-d", ControllerMode.CONTROLLER_MODE_DUAL, { guestMemory: undefined });
    await hosts.source.ic("createController", { controller: spec, requestId: "" });
    await hosts.source.ic("connectVcpu", { name: n, vcpuId: 0, server: 0, requestId: "" });
    await hosts.source.ic("selectMode", { name: n, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
    await hosts.source.ds("quiesceDevices", { vm: "vm-d" });
    const { sections } = await hosts.source.ds("exportDeviceState", { vm: "vm-d" });
    assert.equal(sections[0]?.kind, "xive");
    await hosts.destination.ds("importDeviceState", {
      vm: "vm-d",
      sections,
      guestMemory: undefined,
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    await hosts.destination.stop();
    hosts.destination = await startHost(hosts.destination.dataDir);
    const { controller } = await hosts.destination.ic("getController", { name: n });
    assert.deepEqual(
      [controller?.mode, controller?.activeMode, controller?.connectedServers],
      [ControllerMode.CONTROLLER_MODE_DUAL, ActiveMode.ACTIVE_MODE_XIVE, [0]],
    );
  });
});
