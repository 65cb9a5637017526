import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { EventQueueReader } from "../src/event-queue-reader.js";
import { HcallOpcode as Op, HcallReturn as H } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { XICS_STATUS_ASSERTED } from "../src/xics/ics.js";
import { thrown } from "./fixtures.js";
import {
  MASKED_SOURCE,
  MIGRATION_RAM,
  QUEUES,
  SERVERS,
  WRAPPING_QINDEX,
  copyRam,
  observeXics,
  observeXive,
  signalRecorder,
  xicsMachine,
  xiveMachine,
} from "./migration-fixtures.js";

/** Moves a quiesced controller to a fresh one on a copy of its RAM, as a migration does. */
function migrate(controller: InterruptController, memory: SparseGuestMemory) {
  const recorder = signalRecorder();
  const ram = copyRam(memory);
  const imported = InterruptController.importState(
    ram,
    { onSignal: recorder.sink },
    controller.exportState(),
  );
  return { controller: imported, memory: ram, recorder };
}

const pqOf = (controller: InterruptController, irq: number) => controller.xive("test").source(irq)!.pq;

describe("XIVE quiesce (xive.md §6 stop)", () => {
  it("§6 saves every valid source's PQ and latches it at 10, except 01 which stays off", () => {
    const { controller } = xiveMachine();
    const xive = controller.xive("test");
    controller.trigger(0x1301); // 00 → 10
    controller.trigger(0x1302);
    controller.trigger(0x1302); // → 11
    xive.esbLoad(0x1303, true, 0xd00); // SET_PQ_01
    const before = [0x1300, 0x1301, 0x1302, 0x1303, MASKED_SOURCE].map((irq) => pqOf(controller, irq));
    assert.deepEqual(before, [0b00, 0b10, 0b11, 0b01, 0b00]);
    controller.quiesce();
    assert.deepEqual(
      [0x1300, 0x1301, 0x1302, 0x1303, MASKED_SOURCE].map((irq) => [
        pqOf(controller, irq),
        xive.savedPqOf(irq),
      ]),
      [
        [0b10, 0b00],
        [0b10, 0b10],
        [0b10, 0b11],
        [0b01, 0b01],
        [0b10, 0b00],
      ],
    );
  });

  it("§6 the stop reports the queue pages written since the last report, not every queue page (emulated: no EQ_SYNC)", () => {
    const { controller, memory } = xiveMachine();
    controller.quiesce();
    controller.resume();
    assert.deepEqual(controller.quiesce(), [], "nothing written since the last report");
    controller.resume();
    controller.trigger(0x1302); // queue (1, 6) at 0x3_0000, entry 0
    controller.trigger(0x1300); // queue (0, 6) at 0x2_0000, entry 16,381 of 16,384: its last page
    const queue16 = 0x3_0000 / memory.pageSize;
    const written = [Math.floor((0x2_0000 + 4 * WRAPPING_QINDEX) / memory.pageSize), queue16];
    assert.deepEqual(controller.quiesce(), written, "the two written pages, ascending; queue (2, 5) not");
    controller.trigger(0x1303); // latched while stopped (saved 00): writes nothing yet
    assert.deepEqual(controller.quiesce(), written, "idempotent until resume");
    assert.equal(
      controller.xive("test").savedPqOf(0x1303),
      0b00,
      "the latched 11 did not replace the saved 00",
    );
    controller.resume(); // replays 0x1303's trigger: entry 1 of queue (1, 6)
    assert.deepEqual(controller.quiesce(), [queue16], "the replay's write, in the next stop's report");
  });

  it("§1.2 the device API's EQ_SYNC still marks every queue page (KVM's contract): the next stop reports them", () => {
    const { controller, memory } = xiveMachine();
    controller.quiesce();
    controller.resume();
    const perQueue = 0x1_0000 / memory.pageSize;
    const every = [0x1_0000, 0x2_0000, 0x3_0000].flatMap((qaddr) =>
      Array.from({ length: perQueue }, (_, i) => qaddr / memory.pageSize + i),
    );
    assert.deepEqual(controller.xive("test").eqSync(), every);
    assert.deepEqual(controller.quiesce(), every);
  });

  it("§6 a trigger while stopped is latched (10 → 11): nothing reaches the queue or the presenter", () => {
    const { controller, recorder } = xiveMachine();
    controller.quiesce();
    const before = controller.xive("test").getQueueConfig(0, 6);
    controller.trigger(0x1300);
    assert.equal(pqOf(controller, 0x1300), 0b11);
    assert.deepEqual(controller.xive("test").getQueueConfig(0, 6), before);
    assert.equal(
      controller.xive("test").getVpState(0)[0] & 0xff_ff_ff_00_00_00_00_00n,
      0x00_ff_00_00_00_00_00_00n,
    );
    assert.deepEqual(recorder.events, []);
  });

  it("§6 guest and configuration calls are refused while quiesced; reads and syncs are not", () => {
    const { controller } = xiveMachine();
    controller.quiesce();
    const refused = [
      () => controller.hcall(0, Op.H_INT_GET_SOURCE_INFO, [0n, 0x1300n]),
      () => controller.mutableXive("ESB access"),
      () => controller.connectVcpu(2),
      () => controller.initSource(0x1310),
      () => controller.setNrServers(8),
      () => controller.selectMode("XIVE"),
    ];
    for (const call of refused) assert.deepEqual(thrown(call).reason, "CONTROLLER_QUIESCED");
    assert.equal(controller.xive("read").source(0x1300)!.pq, 0b10);
    assert.deepEqual(controller.xive("read").getQueueConfig(1, 6)?.qindex, 0);
  });

  it("export needs a quiesced controller (FAILED_PRECONDITION CONTROLLER_NOT_QUIESCED)", () => {
    const { controller } = xiveMachine();
    assert.deepEqual(
      [thrown(() => controller.exportState()).code, thrown(() => controller.exportState()).reason],
      ["FAILED_PRECONDITION", "CONTROLLER_NOT_QUIESCED"],
    );
  });
});

describe("XIVE resume (xive.md §6 resume)", () => {
  it("§6 a source hit while stopped with saved PQ 00 is re-triggered: one queue entry, PQ 10, line raised", () => {
    const { controller, memory, recorder } = xiveMachine();
    controller.quiesce();
    controller.trigger(0x1302);
    controller.resume();
    const reader = new EventQueueReader(memory, 0x3_0000, 16);
    assert.deepEqual(reader.drain(), [{ data: 0x1302, generation: 1 }]);
    assert.equal(pqOf(controller, 0x1302), 0b10);
    assert.deepEqual(recorder.events, [{ server: 1, raised: true }]);
  });

  it("the replay keeps a second trigger (Q) and the arrival order, as a running device would", () => {
    const run = (stop: boolean) => {
      const machine = xiveMachine();
      if (stop) machine.controller.quiesce();
      for (const irq of [0x1303, 0x1302, 0x1302, 0x1303]) machine.controller.trigger(irq);
      if (stop) machine.controller.resume();
      return machine;
    };
    const stopped = run(true);
    const running = run(false);
    assert.deepEqual(new EventQueueReader(stopped.memory, 0x3_0000, 16).drain(), [
      { data: 0x1303, generation: 1 },
      { data: 0x1302, generation: 1 },
    ]);
    assert.deepEqual([pqOf(stopped.controller, 0x1302), pqOf(stopped.controller, 0x1303)], [0b11, 0b11]);
    assert.deepEqual(
      observeXive(stopped.controller, stopped.memory, stopped.recorder),
      observeXive(running.controller, running.memory, running.recorder),
    );
  });

  it("§3 LSI asserted then deasserted while stopped: forwarded on resume from PQ 00, level left low", () => {
    const { controller, memory } = xiveMachine();
    controller.quiesce();
    controller.setIrq(0x1200, true);
    controller.setIrq(0x1200, false);
    assert.equal(pqOf(controller, 0x1200), 0b10, "an LSI never sets Q");
    controller.resume();
    assert.deepEqual(new EventQueueReader(memory, 0x2_0000, 16, { index: 16384 - 3, toggle: 0 }).drain(), [
      { data: 0x1200, generation: 1 },
    ]);
    assert.equal(pqOf(controller, 0x1200), 0b10);
    assert.equal(controller.xive("test").source(0x1200)!.asserted, false);
  });

  it("a source that was off (01) stays off: its triggers while stopped are lost, as when running", () => {
    const { controller, memory } = xiveMachine();
    controller.xive("test").esbLoad(0x1302, true, 0xd00);
    controller.quiesce();
    controller.trigger(0x1302);
    controller.resume();
    assert.equal(pqOf(controller, 0x1302), 0b01);
    assert.deepEqual(new EventQueueReader(memory, 0x3_0000, 16).drain(), []);
  });

  it("resume of a running controller changes nothing", () => {
    const { controller } = xiveMachine();
    controller.trigger(0x1300);
    controller.resume();
    assert.equal(pqOf(controller, 0x1300), 0b10);
    assert.equal(controller.quiesced, false);
  });
});

describe("XIVE export / import (xive.md §6 pre_save, post_load)", () => {
  it("the imported controller is quiesced and exports the same bytes", () => {
    const { controller, memory } = xiveMachine();
    controller.trigger(0x1300);
    controller.quiesce();
    controller.trigger(0x1301);
    const bytes = controller.exportState();
    const moved = migrate(controller, memory);
    assert.equal(moved.controller.quiesced, true);
    assert.deepEqual(moved.controller.exportState(), bytes);
  });

  it("§6 queues keep their live index and generation, sources their EAS, PQ and saved PQ, vCPUs their OS ring", () => {
    const { controller, memory } = xiveMachine();
    for (const irq of [0x1300, 0x1201, 0x1301, 0x1304]) controller.setIrq(irq, true);
    controller.xive("test").timaLoad(2, 0x2_0810, 2); // ACK priority 5 on server 2
    controller.quiesce();
    const source = controller.exportState();
    const moved = migrate(controller, memory);
    const a = controller.xive("a");
    const b = moved.controller.xive("b");
    for (const [server, priority] of QUEUES) {
      assert.deepEqual(b.getQueueConfig(server, priority), a.getQueueConfig(server, priority));
    }
    assert.deepEqual(b.getQueueConfig(0, 6)?.qindex, 16384 - 2, "index and generation after 1 entry");
    for (const irq of [0x1200, 0x1201, 0x1300, 0x1301, MASKED_SOURCE]) {
      assert.deepEqual([b.source(irq), b.savedPqOf(irq)], [a.source(irq), a.savedPqOf(irq)]);
    }
    for (const server of SERVERS) assert.deepEqual(b.context(server)!.regs, a.context(server)!.regs);
    assert.equal(decodeControllerState(source).xive?.contexts.length, SERVERS.length);
  });

  it("a raised line is raised on the destination as the state arrives; the guest then sees the same", () => {
    const { controller, memory, recorder } = xiveMachine();
    controller.trigger(0x1302);
    assert.equal(recorder.lines.get(1), true);
    controller.quiesce();
    const moved = migrate(controller, memory);
    assert.deepEqual(moved.recorder.events, [{ server: 1, raised: true }]);
    controller.resume();
    moved.controller.resume();
    assert.deepEqual(
      observeXive(moved.controller, moved.memory, moved.recorder),
      observeXive(controller, memory, recorder),
    );
  });

  it("DUAL with XIVE selected moves as DUAL; a later CAS re-creates XICS with the machine's sources", () => {
    const recorder = signalRecorder();
    const memory = new SparseGuestMemory(MIGRATION_RAM);
    const dual = new InterruptController(memory, { mode: "DUAL", onSignal: recorder.sink });
    dual.connectVcpu(0);
    dual.initSource(0x1300);
    dual.initSource(0x1200, { lsi: true });
    dual.selectMode("XIVE");
    dual.quiesce();
    const moved = migrate(dual, memory);
    assert.deepEqual([moved.controller.mode, moved.controller.activeMode], ["DUAL", "XIVE"]);
    assert.equal(moved.controller.xive("test").xiveSelected, true);
    moved.controller.resume();
    moved.controller.selectMode("XICS");
    assert.deepEqual(moved.controller.initialisedSources(), [
      { irq: 0x1200, lsi: true },
      { irq: 0x1300, lsi: false },
    ]);
    assert.equal(moved.controller.xics("test").ics.isClaimed(0x1200), true);
  });
});

describe("XICS quiesce / export / import / resume", () => {
  it("a trigger while stopped is held, moves with the state and is presented on resume", () => {
    const { controller, memory, recorder } = xicsMachine();
    assert.deepEqual(controller.quiesce(), [], "XICS has no queue pages");
    controller.trigger(0x1302);
    controller.setIrq(0x1200, true);
    assert.equal(controller.xics("test").icp(1)!.xisr, 0, "nothing presented while stopped");
    assert.equal(thrown(() => controller.hcall(0, Op.H_XIRR, [])).reason, "CONTROLLER_QUIESCED");
    const moved = migrate(controller, memory);
    assert.equal(moved.controller.xics("test").ics.status[0x1200 - 0x1000]! & XICS_STATUS_ASSERTED, 1);
    moved.controller.resume();
    const xirr = moved.controller.hcall(1, Op.H_XIRR, []);
    assert.deepEqual([xirr.returnCode, xirr.outputs], [H.H_SUCCESS, [0xff00_0000n | 0x1302n]]);
    assert.deepEqual(moved.controller.hcall(0, Op.H_XIRR, []).outputs, [0xff00_0000n | 0x1200n]);
    controller.resume();
    assert.deepEqual(recorder.events.length, 2, "the source delivers too once resumed");
  });

  it("ICP state (XIRR, pending priority, MFRR) and ICS sources move; the destination observes the same", () => {
    const { controller, memory, recorder } = xicsMachine();
    controller.hcall(0, Op.H_IPI, [1n, 4n]);
    controller.trigger(0x1301);
    controller.hcall(0, Op.H_XIRR, []);
    controller.trigger(0x1300);
    controller.quiesce();
    const moved = migrate(controller, memory);
    moved.controller.resume();
    controller.resume();
    assert.deepEqual(observeXics(moved.controller, moved.recorder), observeXics(controller, recorder));
  });
});
