// A XICS stop-and-copy delta applied in place to the controller the destination built during
// pre-copy (issue 14, point 2: inside the downtime the destination only applies a delta). Rules
// checked:
// - for every kind of change the source's tracking reads (xics-changes), and triggers logged
//   while stopped, the controller changed in place exports byte for byte what a controller
//   imported whole from the source's final export does, and after resume the guest sees the
//   same (XIRR and MFRR by H_IPOLL, ibm,get-xive, the exception lines);
// - a delta that does not fit the controller is refused, as a full import of the state it makes
//   would be, before anything changes (no vCPU connected, no source claimed);
// - a delta that drops a vCPU is not applied in place (false): no call disconnects one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { HcallOpcode } from "../src/hcall-codes.js";
import { InterruptController } from "../src/interrupt-controller.js";
import { LSIS, MIGRATION_RAM, SOURCES, signalRecorder, xicsMachine } from "./migration-fixtures.js";
import { assertRefusedUnchanged, type Refusal } from "./stop-delta-refusals.js";
import { XICS_CHANGES, XICS_MSI } from "./xics-changes.js";

/** A delta as the destination reads it (through its bytes). */
const wire = (delta: ControllerDelta) => decodeControllerDelta(encodeControllerDelta(delta));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** A controller imported from `state`, with its signal lines recorded. */
function imported(state: Uint8Array) {
  const recorder = signalRecorder();
  const controller = InterruptController.importState(
    new SparseGuestMemory(MIGRATION_RAM),
    { onSignal: recorder.sink },
    state,
  );
  return { controller, recorder };
}

/**
 * The destination's controller built from the source's first pre-copy read, then the source
 * changed by `change` and stopped (`whileStopped` after the quiesce), and its stop delta.
 */
function prepared(
  change: (c: InterruptController) => void,
  whileStopped?: (c: InterruptController) => void,
  setup?: (c: InterruptController) => void,
) {
  const { controller: source } = xicsMachine();
  setup?.(source);
  const first = wire(source.readChanges(true)!);
  const built = imported(encodeControllerState(mergeControllerDelta(undefined, first)));
  change(source);
  source.quiesce();
  whileStopped?.(source);
  const stop = source.readChanges(false);
  return { source, built, stop: stop && wire(stop) };
}

/** What the guest sees once resumed: each vCPU's XIRR and MFRR (H_IPOLL), each source's XIVE, the lines. */
function observe({ controller, recorder }: ReturnType<typeof imported>): unknown {
  controller.resume();
  const xics = controller.xics("observe");
  const servers = controller.connectedVcpus().map((v) => v.server);
  return {
    icps: servers.map((server) => controller.hcall(0, HcallOpcode.H_IPOLL, [BigInt(server)]).outputs),
    sources: [...SOURCES, 0x1306].map((irq) => xics.getXive(irq)),
    lines: servers.map((server) => [xics.icp(server)!.raised, recorder.lines.get(server) ?? false]),
  };
}

/** Equals a controller imported whole from the source's final export, byte for byte and to the guest. */
function assertAsImportedWhole(built: ReturnType<typeof imported>, source: InterruptController): void {
  const final = source.exportState();
  const whole = imported(final);
  assert.equal(hex(built.controller.exportState()), hex(whole.controller.exportState()));
  assert.equal(hex(built.controller.exportState()), hex(final));
  assert.deepEqual(observe(built), observe(whole));
}

describe("XICS stop delta applied in place (issue 14: the destination's finish costs what changed)", () => {
  // A vCPU connected or a source claimed after the last iteration (the lists grow) too.
  for (const change of XICS_CHANGES) {
    it(`${change.name}: equals the controller imported whole`, () => {
      const { source, built, stop } = prepared((c) => change.apply(c));
      assert.ok(stop, "the change is in the stop delta");
      assert.equal(built.controller.applyStopDelta(stop), true);
      assertAsImportedWhole(built, source);
    });
  }

  it("a source put back to its reset state (RTAS on an unclaimed source): removed in place", () => {
    const { source, built, stop } = prepared(
      (c) => void c.xics("t").setXive(0x1306, 0, 0xff),
      undefined,
      (c) => void c.xics("t").setXive(0x1306, 1, 5), // ibm,set-xive needs a source of the ICS, not a claim
    );
    assert.deepEqual(stop!.xics!.sources, { changed: [], removed: [0x1306] });
    assert.equal(built.controller.applyStopDelta(stop!), true);
    assertAsImportedWhole(built, source);
  });

  it("triggers logged while stopped (an MSI, an LSI raised): replayed on resume as the whole import replays them", () => {
    const { source, built, stop } = prepared(
      (c) => void c.xics("t").setXive(XICS_MSI, 1, 3),
      (c) => {
        c.trigger(XICS_MSI);
        c.setIrq(LSIS[0]!, true);
      },
    );
    assert.deepEqual(stop!.stoppedTriggers, [XICS_MSI, LSIS[0]]);
    assert.equal(built.controller.applyStopDelta(stop!), true);
    assertAsImportedWhole(built, source);
  });

  it("a vCPU connected and a source claimed, routed to it, raised while stopped: equals the controller imported whole", () => {
    const { source, built, stop } = prepared(
      (c) => {
        c.connectVcpu(3);
        c.hcall(3, HcallOpcode.H_CPPR, [0xffn]);
        c.initSource(0x1306, { lsi: true });
        c.xics("t").setXive(0x1306, 3, 4);
        c.hcall(0, HcallOpcode.H_IPI, [3n, 0x6n]);
      },
      (c) => void c.setIrq(0x1306, true),
    );
    assert.ok(stop!.vcpus && stop!.machineSources, "both lists are in the stop delta");
    assert.equal(built.controller.applyStopDelta(stop!), true);
    assert.deepEqual(built.controller.connectedVcpus().at(-1), { vcpuId: 3, server: 3 });
    assertAsImportedWhole(built, source);
    assert.deepEqual(built.controller.initialisedSources().at(-1), { irq: 0x1306, lsi: true });
  });

  it("lists that do not fit the records are refused as the full import refuses them; nothing changes", () => {
    const { built, stop } = prepared((c) => {
      c.connectVcpu(3);
      c.initSource(0x1306);
    });
    const { controller } = built;
    const cases: Refusal[] = [
      ["a new vCPU without its ICP", (d) => (d.xics!.icps.changed = []), "STATE_INCONSISTENT", "xics.icps"],
      [
        "a new claim without its record",
        (d) => (d.xics!.sources.changed = []),
        "STATE_INCONSISTENT",
        "xics.sources",
      ],
      [
        "a new claim's record unclaimed",
        (d) => (d.xics!.sources.changed[0]!.flags = 0),
        "STATE_INCONSISTENT",
        "xics.sources.changed[0].flags",
      ],
      [
        "an ICP of a vCPU kept removed",
        (d) => d.xics!.icps.removed.push(1),
        "STATE_INCONSISTENT",
        "xics.icps",
      ],
      [
        "an ICP the state lacks removed",
        (d) => d.xics!.icps.removed.push(3),
        "STATE_DELTA_MISMATCH",
        "xics.icps.removed",
      ],
      [
        "an ICP of a vCPU not connected",
        (d) => (d.vcpus = d.vcpus!.filter((v) => v.server !== 3)),
        "STATE_INCONSISTENT",
        "xics.icps.changed[0].server",
      ],
    ];
    assertRefusedUnchanged(controller, stop!, cases);
    const before = controller.exportState();
    const dropped = structuredClone(stop!);
    dropped.vcpus = dropped.vcpus!.filter((v) => v.vcpuId !== 1);
    assert.equal(controller.applyStopDelta(dropped), false, "a vCPU dropped: built anew, not in place");
    assert.equal(hex(controller.exportState()), hex(before));
    assert.equal(controller.applyStopDelta(stop!), true, "the delta itself still applies");
  });

  it("a delta that does not fit the controller is refused as a full import refuses it; nothing changes", () => {
    const { source, built, stop } = prepared((c) => {
      c.xics("t").setXive(XICS_MSI, 1, 3);
      c.trigger(0x1302);
    });
    const { controller } = built;
    const cases: Refusal[] = [
      [
        "outside the ICS",
        (d) => (d.xics!.sources.changed[0]!.nr = 0x900),
        "STATE_INCONSISTENT",
        "xics.sources.changed[0].nr",
      ],
      [
        "unknown flags",
        (d) => (d.xics!.sources.changed[0]!.flags = 3),
        "STATE_MALFORMED",
        "xics.sources.changed[0].flags",
      ],
      [
        "unknown status bits",
        (d) => (d.xics!.sources.changed[0]!.status = 0x10),
        "STATE_MALFORMED",
        "xics.sources.changed[0].status",
      ],
      [
        "a machine source unclaimed",
        (d) => (d.xics!.sources.changed[0]!.flags = 0),
        "STATE_INCONSISTENT",
        "xics.sources.changed[0].flags",
      ],
      [
        "an unclaimed source claimed",
        (d) =>
          d.xics!.sources.changed.push({
            nr: 0x1306,
            flags: 2,
            server: 0,
            priority: 5,
            savedPriority: 5,
            status: 0,
          }),
        "STATE_INCONSISTENT",
        "xics.sources.changed[1].flags",
      ],
      [
        "a source removed that the state does not hold",
        (d) => d.xics!.sources.removed.push(0x1306),
        "STATE_DELTA_MISMATCH",
        "xics.sources.removed[0]",
      ],
      [
        "a claimed source removed",
        (d) => d.xics!.sources.removed.push(0x1301),
        "STATE_INCONSISTENT",
        "xics.sources.removed[0]",
      ],
      [
        "a source both changed and removed",
        (d) => d.xics!.sources.removed.push(XICS_MSI),
        "STATE_DELTA_MISMATCH",
        "xics.sources.changed[0].nr",
      ],
      [
        "an ICP of no vCPU",
        (d) => (d.xics!.icps.changed[0]!.server = 3),
        "STATE_INCONSISTENT",
        "xics.icps.changed[0].server",
      ],
      [
        "XISR without its pending priority",
        (d) => (d.xics!.icps.changed[0]!.pendingPriority = 0xff),
        "STATE_INCONSISTENT",
        "xics.icps.changed[0].pending_priority",
      ],
      [
        "XISR of an unclaimed source",
        (d) => (d.xics!.icps.changed[0]!.xirr = 0xff00_1306),
        "STATE_INCONSISTENT",
        "xics.icps.changed[0].xirr",
      ],
      [
        "a stopped trigger of an unclaimed source",
        (d) => d.stoppedTriggers.push(0x1306),
        "STATE_INCONSISTENT",
        "stopped_triggers[0]",
      ],
      [
        "more stopped triggers than an MSI keeps",
        (d) => d.stoppedTriggers.push(XICS_MSI, XICS_MSI, XICS_MSI),
        "STATE_INCONSISTENT",
        "stopped_triggers[2]",
      ],
    ];
    assertRefusedUnchanged(controller, stop!, cases);
    assert.equal(controller.applyStopDelta(stop!), true, "the delta itself still applies");
    assertAsImportedWhole(built, source);
  });
});
