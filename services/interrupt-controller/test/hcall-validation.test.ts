import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ActiveMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { HcallOpcode as Op, HcallReturn as H } from "@vplane/xive";
import { QADDR, routedXive } from "./conformance-fixtures.js";
import { failure, suiteHarness } from "./service-harness.js";

/** [what, opcode, args, H_* code] — the xive.md §2 checks table. */
type Row = [string, number, bigint[], number];

const rows: Row[] = [
  ["GET_SOURCE_INFO flags≠0 → H_PARAMETER", Op.H_INT_GET_SOURCE_INFO, [1n, 0x1300n], H.H_PARAMETER],
  ["GET_SOURCE_INFO lisn ≥ nr_irqs → H_P2", Op.H_INT_GET_SOURCE_INFO, [0n, 0x2000n], H.H_P2],
  ["GET_SOURCE_INFO EAS not valid → H_P2", Op.H_INT_GET_SOURCE_INFO, [0n, 0x1301n], H.H_P2],
  [
    "SET_SOURCE_CONFIG unknown flag → H_PARAMETER",
    Op.H_INT_SET_SOURCE_CONFIG,
    [4n, 0x1300n, 0n, 5n, 1n],
    H.H_PARAMETER,
  ],
  ["SET_SOURCE_CONFIG bad lisn → H_P2", Op.H_INT_SET_SOURCE_CONFIG, [0n, 0x1301n, 0n, 5n, 1n], H.H_P2],
  [
    "SET_SOURCE_CONFIG reserved priority → H_P4",
    Op.H_INT_SET_SOURCE_CONFIG,
    [0n, 0x1300n, 0n, 7n, 1n],
    H.H_P4,
  ],
  ["SET_SOURCE_CONFIG unknown target → H_P3", Op.H_INT_SET_SOURCE_CONFIG, [0n, 0x1300n, 5n, 5n, 1n], H.H_P3],
  ["GET_SOURCE_CONFIG flags≠0 → H_PARAMETER", Op.H_INT_GET_SOURCE_CONFIG, [1n, 0x1300n], H.H_PARAMETER],
  ["GET_SOURCE_CONFIG bad lisn → H_P2", Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x1fffn], H.H_P2],
  ["GET_QUEUE_INFO flags≠0 → H_PARAMETER", Op.H_INT_GET_QUEUE_INFO, [1n, 0n, 6n], H.H_PARAMETER],
  ["GET_QUEUE_INFO reserved priority → H_P3", Op.H_INT_GET_QUEUE_INFO, [0n, 0n, 7n], H.H_P3],
  ["GET_QUEUE_INFO unknown target → H_P2", Op.H_INT_GET_QUEUE_INFO, [0n, 9n, 6n], H.H_P2],
  [
    "SET_QUEUE_CONFIG unknown flag → H_PARAMETER",
    Op.H_INT_SET_QUEUE_CONFIG,
    [2n, 0n, 5n, QADDR, 16n],
    H.H_PARAMETER,
  ],
  ["SET_QUEUE_CONFIG reserved priority → H_P3", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 7n, QADDR, 16n], H.H_P3],
  ["SET_QUEUE_CONFIG unknown target → H_P2", Op.H_INT_SET_QUEUE_CONFIG, [1n, 9n, 5n, QADDR, 16n], H.H_P2],
  [
    "SET_QUEUE_CONFIG misaligned qpage → H_P4",
    Op.H_INT_SET_QUEUE_CONFIG,
    [1n, 0n, 5n, QADDR + 0x400n, 12n],
    H.H_P4,
  ],
  [
    "SET_QUEUE_CONFIG queue outside guest RAM → H_P4",
    Op.H_INT_SET_QUEUE_CONFIG,
    [1n, 0n, 5n, 1n << 36n, 24n],
    H.H_P4,
  ],
  ["SET_QUEUE_CONFIG size 13 → H_P5", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, QADDR, 13n], H.H_P5],
  ["GET_QUEUE_CONFIG unknown flag → H_PARAMETER", Op.H_INT_GET_QUEUE_CONFIG, [2n, 0n, 6n], H.H_PARAMETER],
  ["GET_QUEUE_CONFIG reserved priority → H_P3", Op.H_INT_GET_QUEUE_CONFIG, [0n, 0n, 0xffn], H.H_P3],
  ["GET_QUEUE_CONFIG unknown target → H_P2", Op.H_INT_GET_QUEUE_CONFIG, [0n, 1n, 6n], H.H_P2],
  ["SET_OS_REPORTING_LINE → H_FUNCTION", Op.H_INT_SET_OS_REPORTING_LINE, [0n, 0n], H.H_FUNCTION],
  ["GET_OS_REPORTING_LINE → H_FUNCTION", Op.H_INT_GET_OS_REPORTING_LINE, [0n, 0n, 0n], H.H_FUNCTION],
  ["ESB unknown flag → H_PARAMETER", Op.H_INT_ESB, [2n, 0x1300n, 0x800n, 0n], H.H_PARAMETER],
  ["ESB bad lisn → H_P2", Op.H_INT_ESB, [0n, 0x1301n, 0x800n, 0n], H.H_P2],
  ["ESB offset > 1<<17 → H_P3", Op.H_INT_ESB, [0n, 0x1300n, 0x2_0001n, 0n], H.H_P3],
  ["SYNC flags≠0 → H_PARAMETER", Op.H_INT_SYNC, [1n, 0x1300n], H.H_PARAMETER],
  ["SYNC bad lisn → H_P2", Op.H_INT_SYNC, [0n, 0x1301n], H.H_P2],
  ["RESET flags≠0 → H_PARAMETER", Op.H_INT_RESET, [1n], H.H_PARAMETER],
];

describe("conformance: H_INT_* hypercalls through RawHypercall (xive.md §2)", () => {
  const h = suiteHarness();
  let name: string;
  before(async () => {
    name = await routedXive(h, "hcalls");
  });

  it("§2 before the guest selected XIVE at CAS every H_INT_* returns H_FUNCTION", async () => {
    for (let opcode = Op.H_INT_GET_SOURCE_INFO; opcode <= Op.H_INT_RESET; opcode += 4) {
      const response = await h.call("rawHypercall", {
        name,
        server: 0,
        opcode: BigInt(opcode),
        args: [0n, 0x1300n],
        failOnError: false,
      });
      assert.equal(response.returnCode, BigInt(H.H_FUNCTION));
    }
    await h.call("selectMode", { name, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
  });

  for (const [what, opcode, args, code] of rows) {
    it(`§2 ${what}; the code is also in the error details with fail_on_error; nothing changes`, async () => {
      const before = (await h.call("dumpController", { name })).text;
      const response = await h.call("rawHypercall", {
        name,
        server: 0,
        opcode: BigInt(opcode),
        args,
        failOnError: false,
      });
      assert.equal(response.returnCode, BigInt(code));
      const error = await failure(
        h.call("rawHypercall", { name, server: 0, opcode: BigInt(opcode), args, failOnError: true }),
      );
      assert.equal(error.hcallReturnCode, code);
      assert.equal(error.code, code === H.H_FUNCTION ? "FAILED_PRECONDITION" : "INVALID_ARGUMENT");
      assert.equal((await h.call("dumpController", { name })).text, before);
    });
  }

  it("§2 a Linux guest's boot sequence: GET_SOURCE_INFO, SET_QUEUE_CONFIG(ALWAYS_NOTIFY), SET_SOURCE_CONFIG(SET_EISN), GET_QUEUE_CONFIG", async () => {
    const info = await h.call("rawHypercall", {
      name,
      server: 0,
      opcode: BigInt(Op.H_INT_GET_SOURCE_INFO),
      args: [0n, 0x1300n],
      failOnError: true,
    });
    assert.equal(info.outputs[3], 16n);
    await h.call("rawHypercall", {
      name,
      server: 0,
      opcode: BigInt(Op.H_INT_SET_QUEUE_CONFIG),
      args: [1n, 0n, 5n, QADDR + 0x10_0000n, 16n],
      failOnError: true,
    });
    await h.call("rawHypercall", {
      name,
      server: 0,
      opcode: BigInt(Op.H_INT_SET_SOURCE_CONFIG),
      args: [2n, 0x1300n, 0n, 5n, 0x42n],
      failOnError: true,
    });
    const source = (await h.call("getSourceConfig", { name, irq: 0x1300 })).source!;
    assert.deepEqual([source.server, source.priority, source.eisn], [0, 5, 0x42]);
    const q = await h.call("rawHypercall", {
      name,
      server: 0,
      opcode: BigInt(Op.H_INT_GET_QUEUE_CONFIG),
      args: [0n, 0n, 5n],
      failOnError: true,
    });
    assert.deepEqual(q.outputs, [1n, QADDR + 0x10_0000n, 16n, 0n]);
  });

  it("a hypercall with more than 9 arguments is refused", async () => {
    const error = await failure(
      h.call("rawHypercall", {
        name,
        server: 0,
        opcode: 0x3a8n,
        args: new Array<bigint>(10).fill(0n),
        failOnError: false,
      }),
    );
    assert.deepEqual([error.code, error.reason], ["INVALID_ARGUMENT", "TOO_MANY_ARGS"]);
  });
});
