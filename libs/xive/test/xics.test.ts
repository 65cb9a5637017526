import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HcallOpcode as Op, HcallReturn as H } from "../src/hcall-codes.js";
import { XICS_STATUS_MASKED_PENDING } from "../src/xics/ics.js";
import { RtasReturn, XicsDevice } from "../src/xics/xics-device.js";
import { TriggerOutcome } from "../src/xive-router.js";

function setup() {
  const signals: { server: number; raised: boolean }[] = [];
  const xics = new XicsDevice({
    nrServers: 4,
    onSignal: (server, raised) => signals.push({ server, raised }),
    readTimebase: () => 1234n,
  });
  xics.connectVcpu(0);
  xics.connectVcpu(1);
  for (const server of [0, 1]) xics.hcall(server, Op.H_CPPR, [0xffn]);
  return { xics, signals };
}

describe("XICS (ICP per vCPU, ICS per source)", () => {
  it("IPI round trip: H_IPI → line raised → H_XIRR = CPPR 0xFF | XISR 2 → H_EOI → line stays low", () => {
    const { xics, signals } = setup();
    assert.equal(xics.hcall(0, Op.H_IPI, [1n, 5n]).returnCode, H.H_SUCCESS);
    assert.deepEqual(signals, [{ server: 1, raised: true }]);
    assert.deepEqual(xics.hcall(1, Op.H_IPOLL, [1n]).outputs, [0xff00_0002n, 5n]);
    const xirr = xics.hcall(1, Op.H_XIRR, []).outputs[0]!;
    assert.equal(xirr, 0xff00_0002n);
    assert.deepEqual(signals.at(-1), { server: 1, raised: false });
    assert.equal(xics.icp(1)!.cppr, 5, "accept: CPPR takes the pending priority");
    xics.hcall(1, Op.H_IPI, [1n, 0xffn]);
    xics.hcall(1, Op.H_EOI, [xirr]);
    assert.equal(xics.icp(1)!.cppr, 0xff);
    assert.equal(signals.length, 2);
  });

  it("H_IPI / H_IPOLL on an unknown server → H_PARAMETER; an unknown opcode → H_FUNCTION", () => {
    const { xics } = setup();
    assert.equal(xics.hcall(0, Op.H_IPI, [7n, 5n]).returnCode, H.H_PARAMETER);
    assert.equal(xics.hcall(0, Op.H_IPOLL, [7n]).returnCode, H.H_PARAMETER);
    assert.equal(xics.hcall(0, 0x3a8, []).returnCode, H.H_FUNCTION);
  });

  it("H_XIRR_X also returns the timebase", () => {
    const { xics } = setup();
    assert.deepEqual(xics.hcall(0, Op.H_XIRR_X, []).outputs, [0xff00_0000n, 1234n]);
  });

  it("ibm,set-xive routes an MSI; an MSI at priority 0xFF waits (MASKED_PENDING) until int-on", () => {
    const { xics, signals } = setup();
    xics.claim(0x1300, false);
    assert.equal(xics.setXive(0x1300, 1, 4), RtasReturn.SUCCESS);
    assert.equal(xics.intOff(0x1300), RtasReturn.SUCCESS);
    assert.deepEqual(xics.getXive(0x1300), [0, 1, 0xff]);
    xics.trigger(0x1300);
    assert.equal(xics.ics.read(0x1300).status & XICS_STATUS_MASKED_PENDING, XICS_STATUS_MASKED_PENDING);
    assert.equal(signals.length, 0);
    assert.equal(xics.intOn(0x1300), RtasReturn.SUCCESS);
    assert.deepEqual(signals, [{ server: 1, raised: true }]);
    assert.equal(xics.hcall(1, Op.H_XIRR, []).outputs[0], 0xff00_1300n);
  });

  it("RTAS parameter errors: unknown source, unknown server, priority > 0xFF", () => {
    const { xics } = setup();
    assert.equal(xics.setXive(0x0fff, 0, 5), RtasReturn.PARAM_ERROR);
    assert.equal(xics.setXive(0x1300, 9, 5), RtasReturn.PARAM_ERROR);
    assert.equal(xics.setXive(0x1300, 0, 0x100), RtasReturn.PARAM_ERROR);
    assert.equal(xics.getXive(0x2000)[0], RtasReturn.PARAM_ERROR);
    assert.equal(xics.intOn(0x2000), RtasReturn.PARAM_ERROR);
  });

  it("H_CPPR more favoured than the pending interrupt rejects it; a less favoured CPPR resends it", () => {
    const { xics, signals } = setup();
    xics.claim(0x1300, false);
    xics.setXive(0x1300, 0, 5);
    xics.trigger(0x1300);
    xics.hcall(0, Op.H_CPPR, [3n]);
    assert.deepEqual(signals.at(-1), { server: 0, raised: false });
    assert.equal(xics.icp(0)!.xisr, 0);
    xics.hcall(0, Op.H_CPPR, [0xffn]);
    assert.equal(xics.icp(0)!.xisr, 0x1300, "rejected MSI resent");
  });

  it("LSI: asserted and EOIed is sent again; deasserted it is not", () => {
    const { xics } = setup();
    xics.claim(0x1200, true);
    xics.setXive(0x1200, 0, 5);
    assert.equal(xics.setIrq(0x1200, true), TriggerOutcome.DELIVERED);
    const xirr = Number(xics.hcall(0, Op.H_XIRR, []).outputs[0]!);
    xics.hcall(0, Op.H_EOI, [BigInt(xirr) | 0xff00_0000n]);
    assert.equal(xics.icp(0)!.xisr, 0x1200, "still asserted: presented again");
    xics.hcall(0, Op.H_XIRR, []);
    xics.setIrq(0x1200, false);
    xics.hcall(0, Op.H_EOI, [0xff00_1200n]);
    assert.equal(xics.icp(0)!.xisr, 0);
  });

  it("connect: EBUSY, EINVAL, EEXIST like the XIVE device", () => {
    const { xics } = setup();
    assert.throws(() => xics.connectVcpu(0, 2), { errno: 16 });
    assert.throws(() => xics.connectVcpu(2, 4), { errno: 22 });
    assert.throws(() => xics.connectVcpu(2, 1), { errno: 17 });
  });
});
