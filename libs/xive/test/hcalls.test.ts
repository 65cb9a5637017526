import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HcallOpcode as Op, HcallReturn as H, REG_MINUS_ONE } from "../src/hcall-codes.js";
import { SpaprXiveHcalls } from "../src/spapr-hcalls.js";
import { dumpXive } from "../src/pic-dump.js";
import { endIndexOf } from "../src/eas.js";
import { queueSlots } from "../src/end-table.js";
import { QADDR, makeDevice, routedDevice, sourceConfig } from "./fixtures.js";
import { modelKernel } from "./model-kernel.js";

const M1 = REG_MINUS_ONE;

function setup() {
  const made = routedDevice(0x1300, 0x1300);
  made.device.initSource(0x1200, { lsi: true });
  made.device.xiveSelected = true;
  return { ...made, hcalls: new SpaprXiveHcalls(made.device) };
}

/** Each row: opcode, args, expected return code (xive.md §2 checks table). */
type Row = [string, number, bigint[], number];

const table: Row[] = [
  ["GET_SOURCE_INFO flags≠0", Op.H_INT_GET_SOURCE_INFO, [1n, 0x1300n], H.H_PARAMETER],
  ["GET_SOURCE_INFO lisn ≥ nr_irqs", Op.H_INT_GET_SOURCE_INFO, [0n, 0x2000n], H.H_P2],
  ["GET_SOURCE_INFO EAS not valid", Op.H_INT_GET_SOURCE_INFO, [0n, 0x1301n], H.H_P2],
  ["SET_SOURCE_CONFIG unknown flag", Op.H_INT_SET_SOURCE_CONFIG, [4n, 0x1300n, 0n, 5n, 1n], H.H_PARAMETER],
  ["SET_SOURCE_CONFIG bad lisn", Op.H_INT_SET_SOURCE_CONFIG, [0n, 0x1301n, 0n, 5n, 1n], H.H_P2],
  ["SET_SOURCE_CONFIG prio reserved (7)", Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 0n, 7n, 1n], H.H_P4],
  [
    "SET_SOURCE_CONFIG prio 0x107 (8-bit 7)",
    Op.H_INT_SET_SOURCE_CONFIG,
    [2n, 0x1300n, 0n, 0x107n, 1n],
    H.H_P4,
  ],
  ["SET_SOURCE_CONFIG unknown target", Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 9n, 5n, 1n], H.H_P3],
  ["GET_SOURCE_CONFIG flags≠0", Op.H_INT_GET_SOURCE_CONFIG, [1n, 0x1300n], H.H_PARAMETER],
  ["GET_SOURCE_CONFIG bad lisn", Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x5000n], H.H_P2],
  ["GET_QUEUE_INFO flags≠0", Op.H_INT_GET_QUEUE_INFO, [1n, 0n, 6n], H.H_PARAMETER],
  ["GET_QUEUE_INFO prio reserved", Op.H_INT_GET_QUEUE_INFO, [0n, 0n, 7n], H.H_P3],
  ["GET_QUEUE_INFO unknown target", Op.H_INT_GET_QUEUE_INFO, [0n, 3n, 6n], H.H_P2],
  ["SET_QUEUE_CONFIG unknown flag", Op.H_INT_SET_QUEUE_CONFIG, [2n, 0n, 5n, 0x20_0000n, 16n], H.H_PARAMETER],
  ["SET_QUEUE_CONFIG prio reserved", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 0xffn, 0x20_0000n, 16n], H.H_P3],
  ["SET_QUEUE_CONFIG unknown target", Op.H_INT_SET_QUEUE_CONFIG, [1n, 4n, 5n, 0x20_0000n, 16n], H.H_P2],
  ["SET_QUEUE_CONFIG misaligned", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 0x20_1000n, 16n], H.H_P4],
  ["SET_QUEUE_CONFIG 2M misaligned", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 0x30_0000n, 21n], H.H_P4],
  ["SET_QUEUE_CONFIG outside RAM", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 1n << 40n, 16n], H.H_P4],
  ["SET_QUEUE_CONFIG size 15", Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 0x20_0000n, 15n], H.H_P5],
  ["GET_QUEUE_CONFIG unknown flag", Op.H_INT_GET_QUEUE_CONFIG, [2n, 0n, 6n], H.H_PARAMETER],
  ["GET_QUEUE_CONFIG prio reserved", Op.H_INT_GET_QUEUE_CONFIG, [0n, 0n, 7n], H.H_P3],
  ["GET_QUEUE_CONFIG unknown target", Op.H_INT_GET_QUEUE_CONFIG, [0n, 2n, 6n], H.H_P2],
  ["SET_OS_REPORTING_LINE", Op.H_INT_SET_OS_REPORTING_LINE, [0n, 0n], H.H_FUNCTION],
  ["GET_OS_REPORTING_LINE", Op.H_INT_GET_OS_REPORTING_LINE, [0n, 0n, 0n], H.H_FUNCTION],
  ["ESB unknown flag", Op.H_INT_ESB, [2n, 0x1300n, 0x800n, 0n], H.H_PARAMETER],
  ["ESB bad lisn", Op.H_INT_ESB, [0n, 0x1301n, 0x800n, 0n], H.H_P2],
  ["ESB offset > 1<<17", Op.H_INT_ESB, [0n, 0x1300n, 0x20001n, 0n], H.H_P3],
  ["ESB spills onto an invalid source", Op.H_INT_ESB, [0n, 0x1300n, 0x10800n, 0n], H.H_HARDWARE],
  ["SYNC flags≠0", Op.H_INT_SYNC, [1n, 0x1300n], H.H_PARAMETER],
  ["SYNC bad lisn", Op.H_INT_SYNC, [0n, 0x1301n], H.H_P2],
  ["RESET flags≠0", Op.H_INT_RESET, [1n], H.H_PARAMETER],
  ["unknown opcode", 0x3d4, [], H.H_FUNCTION],
];

describe("H_INT_* hypercalls (xive.md §2)", () => {
  it("§2 every H_INT_* returns H_FUNCTION until the guest selected XIVE at CAS", () => {
    const { device } = routedDevice();
    const hcalls = new SpaprXiveHcalls(device);
    for (let op = Op.H_INT_GET_SOURCE_INFO; op <= Op.H_INT_RESET; op += 4) {
      assert.equal(hcalls.call(op, [0n, 0x1300n]).returnCode, H.H_FUNCTION);
    }
  });

  for (const [name, opcode, args, code] of table) {
    it(`§2 validation: ${name} → ${code}, no state change`, () => {
      const { device, hcalls } = setup();
      const before = dumpXive(device);
      assert.equal(hcalls.call(opcode, args).returnCode, code);
      assert.equal(dumpXive(device), before);
    });
  }

  it("§2 GET_SOURCE_INFO: MSI gets the 2-page ESB addresses and shift 16; LSI gets H_INT_ESB|LSI and -1", () => {
    const { hcalls } = setup();
    assert.deepEqual(hcalls.call(Op.H_INT_GET_SOURCE_INFO, [0n, 0x1300n]), {
      returnCode: 0,
      outputs: [
        0n,
        0x0006_0100_0000_0000n + (0x1300n << 17n) + 0x10000n,
        0x0006_0100_0000_0000n + (0x1300n << 17n),
        16n,
      ],
    });
    assert.deepEqual(hcalls.call(Op.H_INT_GET_SOURCE_INFO, [0n, 0x1200n]).outputs, [12n, M1, M1, 16n]);
  });

  it("§2 SET_SOURCE_CONFIG: prio 0xFF resets the EAS to VALID|MASKED; EISN only with SET_EISN; MASK keeps the target", () => {
    const { hcalls, device } = setup();
    assert.equal(hcalls.call(Op.H_INT_SET_SOURCE_CONFIG, [0n, 0x1300n, 0n, 0xffn, 0n]).returnCode, 0);
    assert.deepEqual(device.source(0x1300), {
      irq: 0x1300,
      lsi: false,
      asserted: false,
      pq: 0,
      masked: true,
      server: 0,
      priority: 0,
      eisn: 0,
    });
    hcalls.call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 0n, 5n, 0x8000_0077n]);
    assert.equal(device.source(0x1300)!.eisn, 0x77, "31-bit EISN");
    hcalls.call(Op.H_INT_SET_SOURCE_CONFIG, [1n, 0x1300n, 0n, 6n, 0x99n]);
    const s = device.source(0x1300)!;
    assert.deepEqual([s.masked, s.priority, s.eisn], [true, 6, 0x77]);
  });

  it("§2 GET_SOURCE_CONFIG: target from the END's NVT, prio 0xFF when masked, EISN", () => {
    const { hcalls } = setup();
    assert.deepEqual(hcalls.call(Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n]).outputs, [0n, 6n, 0x1300n]);
    hcalls.call(Op.H_INT_SET_SOURCE_CONFIG, [3n, 0x1300n, 0n, 5n, 4n]);
    // END (0,5) was never configured: its NVT is 0, so the target reads 0 - 0x400 (QEMU).
    assert.deepEqual(hcalls.call(Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n]).outputs, [
      0xffff_fc00n,
      0xffn,
      4n,
    ]);
  });

  it("§2 SET/GET_QUEUE_CONFIG and GET_QUEUE_INFO: sizes 12/16/21/24, 0 resets; DEBUG adds generation and index", () => {
    const { hcalls, device } = setup();
    for (const size of [12n, 16n, 21n, 24n]) {
      assert.equal(hcalls.call(Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 0x100_0000n, size]).returnCode, 0);
      assert.deepEqual(hcalls.call(Op.H_INT_GET_QUEUE_CONFIG, [0n, 0n, 5n]).outputs, [
        1n,
        0x100_0000n,
        size,
        0n,
      ]);
    }
    assert.deepEqual(hcalls.call(Op.H_INT_GET_QUEUE_INFO, [0n, 0n, 5n]).outputs, [
      0x0006_0100_0000_0000n + (0x2000n << 17n) + (5n << 17n),
      24n,
    ]);
    device.trigger(0x1300);
    assert.deepEqual(hcalls.call(Op.H_INT_GET_QUEUE_CONFIG, [1n, 0n, 6n]).outputs, [
      1n | (1n << 62n),
      BigInt(QADDR),
      16n,
      1n,
    ]);
    assert.equal(hcalls.call(Op.H_INT_SET_QUEUE_CONFIG, [0n, 0n, 5n, 0n, 0n]).returnCode, 0);
    assert.deepEqual(hcalls.call(Op.H_INT_GET_QUEUE_CONFIG, [0n, 0n, 5n]).outputs, [0n, 0n, 0n, 0n]);
    assert.deepEqual(hcalls.call(Op.H_INT_GET_QUEUE_INFO, [0n, 0n, 5n]).outputs[1], 0n);
  });

  it("§2 SET_QUEUE_CONFIG without ALWAYS_NOTIFY: the ESn PQ coalesces notifications after the first", () => {
    const { hcalls, device, signals } = setup();
    hcalls.call(Op.H_INT_SET_QUEUE_CONFIG, [0n, 0n, 6n, BigInt(QADDR), 16n]);
    device.trigger(0x1300);
    device.esbLoad(0x1300, true, 0x000);
    device.trigger(0x1300);
    assert.equal(device.router.counters.delivered, 1);
    assert.equal(device.router.counters.endCoalesced, 1);
    assert.equal(signals.length, 1);
  });

  it("§2 H_INT_ESB: load returns the PQ op result, store returns -1; LSI EOI re-triggers while asserted", () => {
    const { hcalls, device } = setup();
    assert.deepEqual(hcalls.call(Op.H_INT_ESB, [0n, 0x1300n, 0x800n, 0n]).outputs, [0n]);
    assert.deepEqual(hcalls.call(Op.H_INT_ESB, [1n, 0x1300n, 0x000n, 0n]).outputs, [M1]);
    assert.equal(device.source(0x1300)!.pq, 0b10, "store at 0x000 triggers");
    device.setSourceConfig(0x1200, (0x1200n << 33n) | 6n);
    hcalls.call(Op.H_INT_ESB, [0n, 0x1200n, 0xc00n, 0n]);
    device.setIrq(0x1200, true);
    assert.deepEqual(hcalls.call(Op.H_INT_ESB, [0n, 0x1200n, 0x000n, 0n]).outputs, [1n]);
  });

  it("§2 H_INT_RESET: EAS VALID|MASKED, ENDs reset, sources PQ 01 with ASSERTED cleared", () => {
    const { hcalls, device } = setup();
    device.setIrq(0x1200, true);
    device.trigger(0x1300);
    assert.equal(hcalls.call(Op.H_INT_RESET, [0n]).returnCode, 0);
    const s = device.source(0x1300)!;
    assert.deepEqual([s.pq, s.masked, s.eisn], [1, true, 0]);
    assert.deepEqual([device.source(0x1200)!.lsi, device.source(0x1200)!.asserted], [true, false]);
    assert.equal(device.getQueueConfig(0, 6), undefined);
  });

  it("§2 SYNC succeeds for a valid LISN", () => {
    const { hcalls } = setup();
    assert.equal(hcalls.call(Op.H_INT_SYNC, [0n, 0x1300n]).returnCode, 0);
  });

  it("§2 a device with store-EOI reports STORE_EOI in GET_SOURCE_INFO", () => {
    const { device } = makeDevice({ storeEoi: true });
    device.connectVcpu(0);
    device.initSource(4);
    device.xiveSelected = true;
    assert.equal(new SpaprXiveHcalls(device).call(Op.H_INT_GET_SOURCE_INFO, [0n, 4n]).outputs[0], 1n);
  });
});

describe("H_INT_* hypercalls with the interrupt controller in the kernel (QEMU's kvm_irqchip_in_kernel() branches)", () => {
  /** The calls made as the native backend makes them, over the model's own KVM device controls. */
  function inKernelSetup() {
    const made = setup();
    const kernel = modelKernel(made.device);
    return { ...made, call: (opcode: number, args: bigint[]) => made.hcalls.call(opcode, args, kernel) };
  }

  const refusedByTheDevice: Row[] = [
    [
      "4 KiB queue (the device takes 64 KiB only)",
      Op.H_INT_SET_QUEUE_CONFIG,
      [1n, 0n, 6n, 0x20_0000n, 12n],
      H.H_HARDWARE,
    ],
    ["queue without ALWAYS_NOTIFY", Op.H_INT_SET_QUEUE_CONFIG, [0n, 0n, 6n, 0x20_0000n, 16n], H.H_HARDWARE],
    [
      "a second queue priority on vCPU 0 (single escalation)",
      Op.H_INT_SET_QUEUE_CONFIG,
      [1n, 0n, 5n, 0x20_0000n, 16n],
      H.H_HARDWARE,
    ],
    [
      "a source routed to a priority with no queue (EBUSY)",
      Op.H_INT_SET_SOURCE_CONFIG,
      [2n, 0x1300n, 0n, 5n, 1n],
      H.H_HARDWARE,
    ],
    [
      "QEMU's checks still come first: size 15",
      Op.H_INT_SET_QUEUE_CONFIG,
      [1n, 0n, 5n, 0x20_0000n, 15n],
      H.H_P5,
    ],
  ];
  for (const [name, opcode, args, code] of refusedByTheDevice) {
    it(`§2 ${name} → ${code}, no state change`, () => {
      const { device, call } = inKernelSetup();
      const before = dumpXive(device);
      assert.equal(call(opcode, args).returnCode, code);
      assert.equal(dumpXive(device), before);
    });
  }

  it("§2 a 64 KiB ALWAYS_NOTIFY queue and a source routed to it go through the device; GET_QUEUE_CONFIG asks it for the live index", () => {
    const { device, call } = inKernelSetup();
    assert.equal(call(Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 6n, 0x20_0000n, 16n]).returnCode, 0);
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 0n, 6n, 0x77n]).returnCode, 0);
    device.trigger(0x1300);
    assert.deepEqual(call(Op.H_INT_GET_QUEUE_CONFIG, [1n, 0n, 6n]).outputs, [
      1n | (1n << 62n),
      0x20_0000n,
      16n,
      1n,
    ]);
  });

  /**
   * vCPU 1 gets a priority-6 queue beside vCPU 0's, whose every source slot is then taken (each
   * SOURCE_CONFIG that changes a source's EISN takes one, and none comes back), and MSI 0x1301
   * is initialised and on (PQ 00).
   */
  function fullQueueSetup() {
    const made = inKernelSetup();
    const { device, call } = made;
    device.connectVcpu(1);
    assert.equal(call(Op.H_INT_SET_QUEUE_CONFIG, [1n, 1n, 6n, 0x20_0000n, 16n]).returnCode, 0);
    const full = endIndexOf(0, 6);
    const ends = device.router.ends!;
    for (let eisn = 1; ends.kvmCount[full]! < queueSlots(16); eisn++) {
      device.setSourceConfig(0x1300, sourceConfig(0, 6, eisn));
    }
    device.initSource(0x1301);
    device.esbLoad(0x1301, true, 0xc00);
    return { ...made, ends };
  }

  // QEMU's h_int_set_source_config hands the END asked for to the KVM device and keeps it in its
  // EAT once the device took it; KVM's kvmppc_xive_select_target puts the source on the first
  // vCPU whose queue at that priority has a page and a free slot when the asked one has none,
  // and routes it there (Linux book3s_xive.c, book3s_xive_native.c update_source_config).
  it("§2 a source asked for a vCPU whose queue is full: H_SUCCESS, the device delivers to the vCPU it picked, GET_SOURCE_CONFIG answers the END asked for (QEMU's EAT)", () => {
    const { device, call } = fullQueueSetup();
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1301n, 0n, 6n, 0x99n]).returnCode, 0);
    assert.equal(device.source(0x1301)!.server, 1, "the device routes it to vCPU 1's queue");
    device.trigger(0x1301);
    assert.equal(device.getQueueConfig(1, 6)!.qindex, 1, "the event is in vCPU 1's queue");
    assert.deepEqual(call(Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x1301n]).outputs, [0n, 6n, 0x99n]);
    // Asked for where the device has it: QEMU's EAT and the device agree again.
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1301n, 1n, 6n, 0x99n]).returnCode, 0);
    assert.deepEqual(call(Op.H_INT_GET_SOURCE_CONFIG, [0n, 0x1301n]).outputs, [1n, 6n, 0x99n]);
  });

  // KVM compares a SOURCE_CONFIG with the server it picked, not the one QEMU asked for
  // (kvmppc_xive_native_update_source_config), so QEMU asking for the same END again is no no-op
  // there: the target is selected again and takes another slot.
  it("§2 the same request again after the device moved the source selects again and takes a slot (KVM compares with the server it picked)", () => {
    const { call, ends } = fullQueueSetup();
    const picked = endIndexOf(1, 6);
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1301n, 0n, 6n, 0x99n]).returnCode, 0);
    assert.equal(ends.kvmCount[picked], 1);
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1301n, 0n, 6n, 0x99n]).returnCode, 0);
    assert.equal(ends.kvmCount[picked], 2);
  });

  it("§2 a source asked for a full queue with no other queue at that priority: the device's EBUSY is H_HARDWARE and QEMU keeps its EAT", () => {
    const { device, call } = fullQueueSetup();
    assert.equal(call(Op.H_INT_SET_QUEUE_CONFIG, [0n, 1n, 6n, 0n, 0n]).returnCode, 0, "vCPU 1's queue reset");
    const before = dumpXive(device);
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [2n, 0x1301n, 0n, 6n, 0x99n]).returnCode, H.H_HARDWARE);
    assert.equal(dumpXive(device), before);
  });

  it("§2 priority 0xFF masks the source in the device too (QEMU skips the device there, xive.md §10.4)", () => {
    const { device, call } = inKernelSetup();
    assert.equal(call(Op.H_INT_SET_SOURCE_CONFIG, [0n, 0x1300n, 0n, 0xffn, 0n]).returnCode, 0);
    device.trigger(0x1300);
    assert.equal(device.router.counters.delivered, 0);
  });

  it("§2 H_INT_ESB: an LSI's load-EOI is SET_PQ_00 then a trigger while asserted, and returns 0 (kvmppc_xive_esb_rw)", () => {
    const { device, call } = inKernelSetup();
    device.setSourceConfig(0x1200, (0x1200n << 33n) | 6n);
    call(Op.H_INT_ESB, [0n, 0x1200n, 0xc00n, 0n]);
    device.setIrq(0x1200, true);
    assert.equal(device.router.counters.delivered, 1);
    assert.deepEqual(call(Op.H_INT_ESB, [0n, 0x1200n, 0x000n, 0n]).outputs, [0n]);
    assert.equal(device.source(0x1200)!.pq, 0b10);
    assert.equal(device.router.counters.delivered, 2, "re-triggered while asserted");
  });

  it("§2 H_INT_RESET: the device's RESET (unmasked sources PQ 01; masked ones keep theirs), then EAS, ENDs, ASSERTED", () => {
    const { device, call } = inKernelSetup();
    device.initSource(0x1302);
    device.esbLoad(0x1302, true, 0xc00);
    device.setIrq(0x1200, true);
    device.trigger(0x1300);
    assert.equal(call(Op.H_INT_RESET, [0n]).returnCode, 0);
    assert.deepEqual([device.source(0x1300)!.pq, device.source(0x1300)!.masked], [1, true]);
    assert.equal(device.source(0x1302)!.pq, 0, "masked: its PQ is left");
    assert.equal(device.source(0x1200)!.asserted, false);
    assert.equal(
      call(Op.H_INT_SET_QUEUE_CONFIG, [1n, 0n, 5n, 0x20_0000n, 16n]).returnCode,
      0,
      "RESET freed the escalation",
    );
  });
});
