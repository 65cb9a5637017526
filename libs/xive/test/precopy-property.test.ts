// Pre-copy of a controller's state (issue 14): the deltas read while the guest runs and
// reconfigures, applied in order, then the stop's delta, give exactly the state a stop-and-copy
// exports, and the guest loses no interrupt (xive.md §6; the queue pages written after RAM was
// copied reach the destination only because the stop reports them), with the configuration changed before
// the first read, between reads, after the last and (refused, nothing changed) while stopped.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { InterruptController } from "../src/interrupt-controller.js";
import type { ControllerState } from "../src/device-state/controller-state.js";
import { mergeControllerDelta, type ControllerDelta } from "../src/device-state/controller-delta.js";
import { decodeControllerState } from "../src/device-state/decode-controller-state.js";
import { decodeControllerDelta } from "../src/device-state/decode-controller-delta.js";
import { encodeControllerDelta } from "../src/device-state/encode-controller-delta.js";
import { encodeControllerState } from "../src/device-state/encode-controller-state.js";
import { XiveError } from "../src/xive-error.js";
import { sourceConfig } from "./fixtures.js";
import { XicsGuest, applyDeviceStep, deviceStep, xiveAck, xiveEoi, type DeviceStep } from "./guest-steps.js";
import {
  MIGRATION_RAM,
  MSIS,
  QUEUES,
  SERVERS,
  SOURCES,
  continueOnDestination,
  copyRam,
  observeXics,
  observeXive,
  resendPages,
  xicsMachine,
  xiveMachine,
} from "./migration-fixtures.js";

/** A source the machine initialises during the run (the machine-source list changes). */
const LATE_SOURCE = 0x1306;

/** Configuration: a source re-routed to a queue or masked, a source initialised late. */
type ConfigStep = { t: "route"; irq: number; queue: number; masked: boolean } | { t: "lateSource" };
type Step = DeviceStep | ConfigStep | { t: "eoi"; irq: number } | { t: "ack"; server: number };

const configStep: fc.Arbitrary<ConfigStep> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant("route" as const),
      irq: fc.constantFrom(...SOURCES),
      queue: fc.integer({ min: 0, max: QUEUES.length - 1 }),
      masked: fc.boolean(),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ t: fc.constant("lateSource" as const) }), weight: 1 },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: deviceStep, weight: 4 },
  { arbitrary: configStep, weight: 3 },
  { arbitrary: fc.record({ t: fc.constant("eoi" as const), irq: fc.constantFrom(...SOURCES) }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant("ack" as const), server: fc.constantFrom(...SERVERS) }),
    weight: 2,
  },
);
const steps = fc.array(step, { maxLength: 25 });

/** Before the first read, between the two reads, after the last, while stopped (source, then destination). */
const scenario = fc.record({
  before: steps,
  between: steps,
  afterLast: steps,
  stopped: fc.array(fc.oneof(deviceStep, configStep), { maxLength: 8 }),
  onDestination: fc.array(deviceStep, { maxLength: 6 }),
  after: steps,
});

function applyXive(controller: InterruptController, s: Step): void {
  if (s.t === "trigger" || s.t === "level") return applyDeviceStep(controller, s);
  if (s.t === "lateSource") return controller.initSource(LATE_SOURCE);
  if (s.t === "route") {
    const [server, priority] = QUEUES[s.queue]!;
    const config = sourceConfig(server, priority, s.irq, s.masked);
    return void controller.mutableXive("guest").setSourceConfig(s.irq, config);
  }
  return s.t === "eoi" ? xiveEoi(controller, s.irq) : xiveAck(controller, s.server);
}

function applyXics(controller: InterruptController, s: Step, guest: XicsGuest): void {
  if (s.t === "trigger" || s.t === "level") return applyDeviceStep(controller, s);
  if (s.t === "lateSource") return controller.initSource(LATE_SOURCE);
  if (s.t === "route") {
    const xics = controller.mutableXics("guest");
    const [server, priority] = QUEUES[s.queue]!;
    return void (s.masked ? xics.intOff(s.irq) : xics.setXive(s.irq, server, priority));
  }
  return s.t === "eoi" ? guest.eoi(controller, s.irq) : guest.ack(controller, s.server);
}

/** A step while quiesced: a device's goes on; a configuration change is refused and changes nothing. */
function applyStopped(
  controller: InterruptController,
  s: DeviceStep | ConfigStep,
  apply: (s: Step) => void,
): void {
  if (s.t === "trigger" || s.t === "level") return apply(s);
  const before = controller.exportState();
  assert.throws(
    () => apply(s),
    (e: unknown) => e instanceof XiveError && e.reason === "CONTROLLER_QUIESCED",
  );
  assert.deepEqual(controller.exportState(), before);
}

/** The destination's side: each read crosses as bytes and merges into what the earlier ones made. */
class Destination {
  state: ControllerState | undefined;

  take(controller: InterruptController, restart: boolean): void {
    this.apply(controller.readChanges(restart));
  }

  apply(delta: ControllerDelta | undefined): void {
    if (delta === undefined) return;
    this.state = mergeControllerDelta(this.state, decodeControllerDelta(encodeControllerDelta(delta)));
  }
}

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/**
 * Runs the scenario through pre-copy on `machine`: RAM copied when the migration starts, two
 * reads while it runs, the stop's after the quiesce, and the pages the quiesce reported copied
 * again (the destination's RAM). Checks that the merged deltas encode to the stop-and-copy's
 * export, byte for byte, and returns that encoding with the destination's RAM.
 */
function preCopyMigration(
  machine: { controller: InterruptController; memory: SparseGuestMemory },
  s: Scenario,
  apply: (step: Step) => void,
): { bytes: Uint8Array; ram: SparseGuestMemory } {
  const source = machine.controller;
  const destination = new Destination();
  for (const x of s.before) apply(x);
  // RAM moves before the devices' first iteration (migration-source.ts): later queue writes
  // reach the destination only as pages the stop reports.
  const early = copyRam(machine.memory);
  destination.take(source, true);
  for (const x of s.between) apply(x);
  destination.take(source, false);
  for (const x of s.afterLast) apply(x);
  const ram = resendPages(early, machine.memory, source.quiesce());
  for (const x of s.stopped) applyStopped(source, x, apply);
  // The destination's finish in place: the controller the iterations built, the stop's delta applied.
  const built = InterruptController.importState(
    new SparseGuestMemory(MIGRATION_RAM),
    {},
    decodeControllerState(encodeControllerState(destination.state!)),
  );
  const stop = source.readChanges(false);
  destination.apply(stop);
  const exported = Buffer.from(source.exportState()).toString("hex");
  const merged = encodeControllerState(destination.state!);
  assert.equal(Buffer.from(merged).toString("hex"), exported);
  // Applied in place, it equals the controller built anew from the merged state; not the source's
  // export, whose queues count every routing since boot (an import counts as KVM's restore,
  // xive-state.ts applyXiveChanges).
  if (stop && built.applyStopDelta(decodeControllerDelta(encodeControllerDelta(stop)))) {
    const anew = InterruptController.importState(new SparseGuestMemory(MIGRATION_RAM), {}, merged);
    assert.equal(
      Buffer.from(built.exportState()).toString("hex"),
      Buffer.from(anew.exportState()).toString("hex"),
    );
  }
  return { bytes: merged, ram };
}

describe("pre-copy deltas (issue 14): the stop-and-copy's state, no lost interrupt", () => {
  it("XIVE: merged deltas equal the export; RAM, PQ, OS ring and lines equal a run without migration", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const reference = xiveMachine();
        for (const x of [...s.before, ...s.between, ...s.afterLast]) applyXive(reference.controller, x);
        for (const x of [...s.stopped, ...s.onDestination])
          if (x.t === "trigger" || x.t === "level") applyXive(reference.controller, x);
        for (const x of s.after) applyXive(reference.controller, x);

        const source = xiveMachine();
        const { bytes, ram } = preCopyMigration(source, s, (x) => applyXive(source.controller, x));
        const observed = continueOnDestination(
          source.memory,
          bytes,
          (destination) => s.onDestination.forEach((x) => applyXive(destination, x)),
          (destination) => s.after.forEach((x) => applyXive(destination, x)),
          ram,
        );
        assert.deepEqual(observed, observeXive(reference.controller, reference.memory, reference.recorder));
      }),
      { numRuns: 200 },
    );
  });

  it("XICS: merged deltas equal the export; XIRR, MFRR, lines and ICS sources equal a run without migration", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const reference = xicsMachine();
        const referenceGuest = new XicsGuest();
        for (const x of [...s.before, ...s.between, ...s.afterLast])
          applyXics(reference.controller, x, referenceGuest);
        for (const x of [...s.stopped, ...s.onDestination])
          if (x.t === "trigger" || x.t === "level") applyXics(reference.controller, x, referenceGuest);
        for (const x of s.after) applyXics(reference.controller, x, referenceGuest);

        const source = xicsMachine();
        const guest = new XicsGuest();
        const { bytes, ram } = preCopyMigration(source, s, (x) => applyXics(source.controller, x, guest));
        const observed = continueOnDestination(
          source.memory,
          bytes,
          (destination) => s.onDestination.forEach((x) => applyXics(destination, x, guest)),
          (destination) => s.after.forEach((x) => applyXics(destination, x, guest)),
          ram,
        );
        assert.deepEqual(observed, observeXics(reference.controller, reference.recorder));
      }),
      { numRuns: 200 },
    );
  });

  it("a read when nothing changed hands out nothing; a restart hands out everything again", () => {
    const { controller } = xiveMachine();
    const first = controller.readChanges(true);
    assert.ok(first?.vcpus && first.machineSources && first.xive!.sources.changed.length === SOURCES.length);
    assert.equal(controller.readChanges(false), undefined);
    controller.trigger(MSIS[0]!);
    const next = controller.readChanges(false)!;
    // The trigger moved PQ (saved 00 → 10) and wrote a queue entry: only those records travel.
    assert.deepEqual(
      next.xive!.sources.changed.map((x) => x.irq),
      [MSIS[0]],
    );
    assert.equal(next.xive!.queues.changed.length, 1);
    assert.equal(next.vcpus, undefined);
    assert.equal(next.machineSources, undefined);
    assert.equal(controller.readChanges(true)!.xive!.sources.changed.length, SOURCES.length);
  });

  it("the stop of a controller that changed nothing since the last read moves nothing (the latch is pre-applied)", () => {
    for (const { controller } of [xiveMachine(), xicsMachine()]) {
      controller.trigger(MSIS[1]!);
      controller.readChanges(true);
      controller.quiesce();
      assert.equal(controller.readChanges(false), undefined);
      controller.trigger(MSIS[1]!); // latched: 10 → 11, and logged for resume
      const stop = controller.readChanges(false)!;
      assert.deepEqual(stop.stoppedTriggers, [MSIS[1]]);
      assert.equal(stop.vcpus, undefined);
    }
  });
});
