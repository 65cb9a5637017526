import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dumpXive } from "../src/pic-dump.js";
import { routedDevice } from "./fixtures.js";

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
});
