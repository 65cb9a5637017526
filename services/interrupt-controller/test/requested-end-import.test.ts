// QEMU's EAT END of a source the KVM device routes elsewhere, through the DeviceStateService: a
// state whose requested_ends list names one (as a native host's export does after a guest's
// H_INT_SET_SOURCE_CONFIG for a vCPU whose queue could not take the source) imports with it, so
// H_INT_GET_SOURCE_CONFIG answers QEMU's END, as QEMU's does after a migration (its stream
// carries its EAT, hw/intc/spapr_xive.c vmstate_spapr_xive), and the next export carries it again.
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ActiveMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { decodeControllerState, encodeControllerState, endIndexOf } from "@vplane/xive";
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { twoHosts, type Host } from "./device-state-host.js";
import { RAM, bootXive, name } from "./xive-guest.js";

const VM = "vm-q";
const MSI = 0x1300; // routed to (0, 6); vCPU 1 has no priority-6 queue (xive-guest.ts QUEUES)
const H_INT_GET_SOURCE_CONFIG = 0x3b0n;

const getSourceConfig = async (host: Host) =>
  (
    await host.ic("rawHypercall", {
      name: name(VM),
      server: 0,
      opcode: H_INT_GET_SOURCE_CONFIG,
      args: [0n, BigInt(MSI)],
      failOnError: true,
    })
  ).outputs;

describe("DeviceStateService: QEMU's END of a source the KVM device routes elsewhere (requested_ends)", () => {
  const hosts = twoHosts();

  it("imported: GET_SOURCE_CONFIG answers QEMU's END; the device routes where KVM's restore puts it; exported again", async () => {
    await bootXive(hosts.source, VM);
    await hosts.source.ic("selectMode", { name: name(VM), mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
    await hosts.source.ds("quiesceDevices", { vm: VM });
    const [section] = (await hosts.source.ds("exportDeviceState", { vm: VM })).sections;
    // What a native host exports after the guest asked for vCPU 1 at priority 6: KVM picked vCPU 0.
    const state = decodeControllerState(section!.payload);
    state.xive!.sources.find((s) => s.irq === MSI)!.requestedEnd = endIndexOf(1, 6);
    const payload = Buffer.from(encodeControllerState(state));

    copyFileSync(join(hosts.source.dataDir, `${VM}.ram`), join(hosts.destination.dataDir, `${VM}.ram`));
    await hosts.destination.ds("importDeviceState", {
      vm: VM,
      sections: [{ ...section!, payload }],
      guestMemory: { path: `${VM}.ram`, sizeBytes: RAM },
      requestId: "",
      backend: Backend.BACKEND_UNSPECIFIED,
    });
    await hosts.destination.ds("resumeDevices", { vm: VM });
    // QEMU answers the target from its END's NVT: (1, 6) never had a queue, so 0 - 0x400.
    const answer = [0xffff_fc00n, 0n, BigInt(MSI)];
    assert.deepEqual(await getSourceConfig(hosts.destination), answer);
    const routed = (await hosts.destination.ic("getSourceConfig", { name: name(VM), irq: MSI })).source!;
    assert.deepEqual([routed.server, routed.priority], [0, 6], "no vCPU 1 queue: KVM picks vCPU 0");
    const dump = (await hosts.destination.ic("dumpController", { name: name(VM) })).text;
    assert.match(dump, /^ {2}00001300 MSI .* routed 0\/6$/m);

    await hosts.destination.ds("quiesceDevices", { vm: VM });
    const [again] = (await hosts.destination.ds("exportDeviceState", { vm: VM })).sections;
    const exported = decodeControllerState(again!.payload).xive!.sources.find((s) => s.irq === MSI)!;
    assert.deepEqual([exported.endIndex, exported.requestedEnd], [endIndexOf(0, 6), endIndexOf(1, 6)]);
  });
});
