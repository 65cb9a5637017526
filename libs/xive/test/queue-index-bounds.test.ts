import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InterruptController } from "../src/interrupt-controller.js";
import { QADDR, RAM_SIZE, eq, sourceConfig } from "./fixtures.js";
import { RecordingGuestMemory } from "./recording-memory.js";

/** Issue 17 point 2: the queue of the report, 64 KiB at 0x100000 (16,384 entries). */
const QUEUE_BYTES = 0x1_0000;
const ENTRIES = QUEUE_BYTES / 4;
const IRQ = 0x1300;
const EISN = 0x42;

/** vCPU 0 with the (0, 6) queue configured through KVM EQ_CONFIG with `qindex`, source IRQ routed to it. */
function machine(qindex: number) {
  const memory = new RecordingGuestMemory(RAM_SIZE);
  const writes: number[] = [];
  memory.onWrite = (address) => writes.push(address);
  const controller = new InterruptController(memory, { mode: "XIVE" });
  controller.connectVcpu(0);
  controller.initSource(IRQ);
  const xive = controller.xive("setup");
  xive.setQueueConfig(0, 6, eq(BigInt(QADDR), { qindex }));
  xive.setSourceConfig(IRQ, sourceConfig(0, 6, EISN));
  xive.esbLoad(IRQ, true, 0xc00); // SET_PQ_00
  return { controller, memory, writes };
}

describe("a queue index past the queue never writes outside it (issue 17 point 2)", () => {
  it("EQ_CONFIG accepts qindex 20000 and reads it back, as KVM and OPAL do (no errno)", () => {
    const { controller } = machine(20_000);
    assert.equal(controller.xive("get").getQueueConfig(0, 6)!.qindex, 20_000);
  });

  it("EQ_CONFIG keeps the index OPAL keeps: masked to the 22-bit PAGE_OFF field", () => {
    const { controller } = machine(0xffff_ffff);
    assert.equal(controller.xive("get").getQueueConfig(0, 6)!.qindex, 0x3f_ffff);
  });

  it("the next event is written at slot qindex mod entries, inside the queue, then the index runs on", () => {
    const { controller, memory, writes } = machine(20_000);
    controller.trigger(IRQ);
    const slot = 20_000 % ENTRIES;
    assert.deepEqual(writes, [QADDR + 4 * slot], "one write, inside [0x100000, 0x110000)");
    assert.equal(memory.readU32BE(QADDR + 4 * slot), (0x8000_0000 | EISN) >>> 0, "generation 1 | EISN");
    assert.equal(memory.readU32BE(0x11_3880), 0, "nothing at qaddr + 4 * 20000 (the report's address)");
    assert.equal(controller.xive("get").getQueueConfig(0, 6)!.qindex, slot + 1);
  });

  it("a state exported with such an index imports (KVM's EQ_CONFIG takes it on restore) and writes inside", () => {
    const source = machine(20_000);
    source.controller.quiesce();
    const bytes = source.controller.exportState();
    const imported = InterruptController.importState(source.memory, {}, bytes);
    imported.resume();
    source.writes.length = 0;
    imported.trigger(IRQ);
    assert.deepEqual(source.writes, [QADDR + 4 * (20_000 % ENTRIES)]);
  });
});
