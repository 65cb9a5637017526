import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { RtasCall } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { HcallOpcode as Op, HcallReturn as H } from "@vplane/xive";
import { controllerSpec } from "./conformance-fixtures.js";
import { collectSignals, failure, suiteHarness } from "./service-harness.js";

const hcall = (name: string, server: number, opcode: number, args: bigint[] = []) => ({
  name,
  server,
  opcode: BigInt(opcode),
  args,
  failOnError: false,
});

describe("conformance: XICS IPI round trip and the dual-mode switch through gRPC", () => {
  const h = suiteHarness();

  it("XICS: H_IPI → vCPU 1's line raised → H_XIRR = 0xFF000002 → line lowered → H_EOI", async () => {
    const name = "vms/xics/controller";
    await h.call("createController", {
      controller: controllerSpec("xics", ControllerMode.CONTROLLER_MODE_XICS),
      requestId: "",
    });
    await h.call("connectVcpu", { name, vcpuId: 0, server: 0, requestId: "" });
    await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "" });
    const signals = collectSignals(h.client.watchVcpuSignals({ name, resumeAfter: 0n }));
    await new Promise((r) => setTimeout(r, 50));
    for (const server of [0, 1]) await h.call("rawHypercall", hcall(name, server, Op.H_CPPR, [0xffn]));
    assert.equal((await h.call("rawHypercall", hcall(name, 0, Op.H_IPI, [1n, 5n]))).returnCode, 0n);
    const [raised] = await signals.next(1);
    assert.deepEqual([raised!.server, raised!.raised], [1, true]);
    const xirr = (await h.call("rawHypercall", hcall(name, 1, Op.H_XIRR))).outputs[0]!;
    assert.equal(xirr, 0xff00_0002n);
    const [, lowered] = await signals.next(2);
    assert.deepEqual([lowered!.server, lowered!.raised], [1, false]);
    await h.call("rawHypercall", hcall(name, 1, Op.H_IPI, [1n, 0xffn]));
    assert.equal((await h.call("rawHypercall", hcall(name, 1, Op.H_EOI, [xirr]))).returnCode, 0n);
    assert.deepEqual((await h.call("rawHypercall", hcall(name, 1, Op.H_IPOLL, [1n]))).outputs, [
      0xff00_0000n,
      0xffn,
    ]);
    assert.equal(
      (await h.call("rawHypercall", hcall(name, 0, Op.H_IPI, [7n, 5n]))).returnCode,
      BigInt(H.H_PARAMETER),
    );
    signals.cancel();
  });

  it("XICS: ibm,set-xive routes a device interrupt; XIVE controls are refused in XICS mode", async () => {
    const name = "vms/xics/controller";
    await h.call("initSources", {
      name,
      sources: [{ irq: 0x1300, levelSensitive: false, asserted: false }],
      requestId: "",
    });
    assert.equal(
      (
        await h.call("callRtas", {
          name,
          call: RtasCall.RTAS_CALL_SET_XIVE,
          irq: 0x1300,
          server: 0,
          priority: 4,
        })
      ).status,
      0,
    );
    assert.deepEqual(
      await h.call("callRtas", {
        name,
        call: RtasCall.RTAS_CALL_GET_XIVE,
        irq: 0x1300,
        server: 0,
        priority: 0,
      }),
      { status: 0, server: 0, priority: 4 },
    );
    assert.equal((await h.call("triggerSources", { name, irqs: [0x1300] })).delivered, 1);
    assert.equal((await h.call("rawHypercall", hcall(name, 0, Op.H_XIRR))).outputs[0], 0xff00_1300n);
    assert.equal(
      (
        await h.call("callRtas", {
          name,
          call: RtasCall.RTAS_CALL_SET_XIVE,
          irq: 0x1300,
          server: 9,
          priority: 4,
        })
      ).status,
      -3,
    );
    const error = await failure(h.call("getVpState", { name, server: 0 }));
    assert.deepEqual(
      [error.code, error.reason, error.errno],
      ["FAILED_PRECONDITION", "XIVE_NOT_ACTIVE", 1],
      "§1.6 EPERM without XIVE",
    );
  });

  it("DUAL: XICS until CAS; SelectMode(XIVE) re-creates the controller in XIVE mode with nothing of XICS left", async () => {
    const name = "vms/dual/controller";
    const created = await h.call("createController", {
      controller: controllerSpec("dual", ControllerMode.CONTROLLER_MODE_DUAL),
      requestId: "",
    });
    assert.equal(created.controller!.activeMode, ActiveMode.ACTIVE_MODE_XICS);
    await h.call("connectVcpu", { name, vcpuId: 0, server: 0, requestId: "" });
    await h.call("initSources", {
      name,
      sources: [
        { irq: 0, levelSensitive: false, asserted: false },
        { irq: 0x1200, levelSensitive: true, asserted: false },
      ],
      requestId: "",
    });
    assert.equal(
      (await h.call("rawHypercall", hcall(name, 0, Op.H_INT_GET_SOURCE_INFO, [0n, 0n]))).returnCode,
      BigInt(H.H_FUNCTION),
    );
    await h.call("rawHypercall", hcall(name, 0, Op.H_CPPR, [0xffn]));
    await h.call("rawHypercall", hcall(name, 0, Op.H_IPI, [0n, 5n]));

    const switched = await h.call("selectMode", { name, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
    assert.equal(switched.controller!.activeMode, ActiveMode.ACTIVE_MODE_XIVE);
    assert.deepEqual(switched.controller!.connectedServers, [0]);
    assert.equal(
      (await h.call("rawHypercall", hcall(name, 0, Op.H_XIRR))).returnCode,
      BigInt(H.H_FUNCTION),
      "XICS is gone",
    );
    const info = await h.call("rawHypercall", hcall(name, 0, Op.H_INT_GET_SOURCE_INFO, [0n, 0x1200n]));
    assert.deepEqual([info.returnCode, info.outputs[0]], [0n, 12n], "the LSI came across as an LSI");
    assert.equal(
      (await h.call("getVpState", { name, server: 0 })).word0,
      0x0000_0000_ff00_0000n,
      "fresh presenter",
    );
    assert.match((await h.call("dumpController", { name })).text, /mode DUAL, active XIVE/);
  });
});
