import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dumpXive } from "../src/pic-dump.js";
import { endIndexOf } from "../src/eas.js";
import { queueSlots } from "../src/end-table.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import { SourceConfigFlag, SpaprXiveHcalls } from "../src/spapr-hcalls.js";
import { QADDR, eq, routedDevice, sourceConfig } from "./fixtures.js";
import { modelKernel } from "./model-kernel.js";

describe("readable dump (xive.md §9 `info pic`)", () => {
  it("shows the OS ring per vCPU and, per source, PQ, EISN, target/priority, queue index/size/toggle and recent entries", () => {
    const { device } = routedDevice(0x1300, 0x1300);
    device.initSource(0x1301);
    device.trigger(0x1300);
    const text = dumpXive(device);
    assert.ok(text.includes("CPU[0000]:   OS    80   ff  02    00   ff  00  00   06  80000400"), text);
    assert.ok(text.includes("00001300 MSI P-    00001300   0/6      1/16384 @100000 ^1 ["), text);
    assert.ok(text.includes("80001300 ^00000000 ]"), text);
    assert.ok(text.includes("00001301 MSI -Q  M 00000000"), text);
  });

  // QEMU's info pic prints the END of its EAT (hw/intc/spapr_xive.c spapr_xive_pic_print_info),
  // which keeps the END the guest asked for where KVM's target selection picked another vCPU.
  it("a source the KVM device routes elsewhere than the guest asked: QEMU's END, then where it is routed", () => {
    const { device } = routedDevice(0x1300, 0x1300);
    device.connectVcpu(1);
    device.setQueueConfig(1, 6, eq(BigInt(QADDR + 0x1_0000)));
    device.initSource(0x1301);
    const full = endIndexOf(1, 6);
    for (let eisn = 1; device.ends!.kvmCount[full]! < queueSlots(16); eisn++)
      device.setSourceConfig(0x1301, sourceConfig(1, 6, eisn));
    device.xiveSelected = true;
    const args = [SourceConfigFlag.SET_EISN, 0x1300n, 1n, 6n, 0x1300n];
    const hcalls = new SpaprXiveHcalls(device);
    assert.equal(hcalls.call(HcallOpcode.H_INT_SET_SOURCE_CONFIG, args, modelKernel(device)).returnCode, 0);
    const line = dumpXive(device)
      .split("\n")
      .find((l) => l.startsWith("  00001300"));
    assert.match(
      line!,
      /^ {2}00001300 MSI -- {4}00001300 {3}1\/6 {6}0\/16384 @110000 \^1 \[.*\] routed 0\/6$/,
    );
  });
});
