import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { HcallOpcode as Op, HcallReturn as H } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { dumpController } from "../src/pic-dump.js";
import { QADDR, RAM_SIZE } from "./fixtures.js";

function dual() {
  const signals: { server: number; raised: boolean }[] = [];
  const controller = new InterruptController(new SparseGuestMemory(RAM_SIZE), {
    mode: "DUAL",
    onSignal: (server, raised) => signals.push({ server, raised }),
  });
  controller.setNrServers(4);
  controller.connectVcpu(0);
  controller.connectVcpu(1);
  controller.initSource(0);
  controller.initSource(0x1300);
  controller.initSource(0x1200, { lsi: true });
  return { controller, signals };
}

describe("dual mode (xive.md §2 CAS, issue: controller re-created in the chosen mode)", () => {
  it("DUAL starts in XICS; H_INT_* answer H_FUNCTION and XIVE controls are refused", () => {
    const { controller } = dual();
    assert.equal(controller.activeMode, "XICS");
    assert.equal(controller.hcall(0, Op.H_INT_GET_SOURCE_INFO, [0n, 0x1300n]).returnCode, H.H_FUNCTION);
    assert.throws(() => controller.xive("EQ_CONFIG"), { reason: "XIVE_NOT_ACTIVE" });
  });

  it("XICS → XIVE: the old controller's state is gone, the raised line is lowered, config is replayed", () => {
    const { controller, signals } = dual();
    controller.hcall(0, Op.H_CPPR, [0xffn]);
    controller.hcall(0, Op.H_IPI, [0n, 5n]);
    assert.deepEqual(signals, [{ server: 0, raised: true }]);
    controller.selectMode("XIVE");
    assert.equal(controller.activeMode, "XIVE");
    assert.deepEqual(signals.at(-1), { server: 0, raised: false });
    const xive = controller.xive("test");
    assert.equal(xive.nrServers, 4);
    assert.deepEqual(xive.connectedServers(), [0, 1]);
    assert.equal(xive.source(0x1200)!.lsi, true);
    assert.equal(xive.source(0)!.pq, 0b01, "fresh sources, masked");
    assert.equal(controller.hcall(0, Op.H_CPPR, [0xffn]).returnCode, H.H_FUNCTION, "XICS hcalls gone");
    // XIVE works end to end after the switch.
    assert.equal(
      controller.hcall(0, Op.H_INT_SET_QUEUE_CONFIG, [1n, 1n, 6n, BigInt(QADDR), 16n]).returnCode,
      0,
    );
    assert.equal(
      controller.hcall(0, Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 1n, 6n, 0x1300n]).returnCode,
      0,
    );
    xive.esbLoad(0x1300, true, 0xc00);
    xive.timaStore(1, 0x2_0011, 1, 0xffn);
    controller.trigger(0x1300);
    assert.deepEqual(signals.at(-1), { server: 1, raised: true });
    assert.match(dumpController(controller), /mode DUAL, active XIVE/);
  });

  it("XIVE → XICS again: nothing of XIVE is left", () => {
    const { controller } = dual();
    controller.selectMode("XIVE");
    controller.hcall(0, Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 6n, BigInt(QADDR), 16n]);
    controller.selectMode("XICS");
    const xics = controller.xics("test");
    assert.equal(xics.ics.isClaimed(0x1300), true);
    assert.equal(xics.ics.read(0x1200).lsi, true);
    controller.selectMode("XIVE");
    assert.equal(controller.xive("test").getQueueConfig(0, 6), undefined);
  });

  it("a XIVE-only controller refuses XICS at CAS; selecting XIVE enables the hcalls", () => {
    const controller = new InterruptController(new SparseGuestMemory(RAM_SIZE), { mode: "XIVE" });
    controller.connectVcpu(0);
    assert.equal(controller.hcall(0, Op.H_INT_RESET, [0n]).returnCode, H.H_FUNCTION);
    assert.throws(() => controller.selectMode("XICS"), { reason: "MODE_UNAVAILABLE" });
    controller.selectMode("XIVE");
    assert.equal(controller.hcall(0, Op.H_INT_RESET, [0n]).returnCode, H.H_SUCCESS);
  });

  it("a hypercall from a vCPU that is not connected is refused", () => {
    const { controller } = dual();
    assert.throws(() => controller.hcall(3, Op.H_CPPR, [0n]), { reason: "VCPU_NOT_CONNECTED" });
  });
});
