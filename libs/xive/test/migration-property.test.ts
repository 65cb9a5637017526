import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { HcallOpcode as Op } from "../src/hcall-codes.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { XicsGuest, applyDeviceStep, deviceStep, xiveAck, xiveEoi, type DeviceStep } from "./guest-steps.js";
import {
  SERVERS,
  SOURCES,
  continueOnDestination,
  observeXics,
  observeXive,
  xicsMachine,
  xiveMachine,
} from "./migration-fixtures.js";

/** What the guest does (only while it runs); a device's steps go on while it is stopped. */
type GuestStep =
  | DeviceStep
  | { t: "eoi"; irq: number }
  | { t: "ack"; server: number }
  | { t: "cppr"; server: number; cppr: number }
  | { t: "setPq"; irq: number; pq: number };

const guestStep: fc.Arbitrary<GuestStep> = fc.oneof(
  { arbitrary: deviceStep, weight: 4 },
  { arbitrary: fc.record({ t: fc.constant("eoi" as const), irq: fc.constantFrom(...SOURCES) }), weight: 3 },
  {
    arbitrary: fc.record({ t: fc.constant("ack" as const), server: fc.constantFrom(...SERVERS) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      t: fc.constant("cppr" as const),
      server: fc.constantFrom(...SERVERS),
      cppr: fc.constantFrom(0, 3, 5, 6, 7, 0xff),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      t: fc.constant("setPq" as const),
      irq: fc.constantFrom(...SOURCES),
      pq: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 1,
  },
);

/** A run: guest steps, the stop (device steps on the source, then on the destination), guest steps. */
const scenario = fc.record({
  before: fc.array(guestStep, { maxLength: 40 }),
  stoppedOnSource: fc.array(deviceStep, { maxLength: 8 }),
  stoppedOnDestination: fc.array(deviceStep, { maxLength: 8 }),
  after: fc.array(guestStep, { maxLength: 40 }),
});

/** Guest steps through the XIVE guest's pages: ESB loads and the TIMA OS page. */
function applyXiveStep(controller: InterruptController, step: GuestStep): void {
  switch (step.t) {
    case "eoi":
      return xiveEoi(controller, step.irq);
    case "ack":
      return xiveAck(controller, step.server);
    case "cppr":
      return controller.mutableXive("guest").timaStore(step.server, 0x2_0011, 1, BigInt(step.cppr));
    case "setPq":
      return void controller.mutableXive("guest").esbLoad(step.irq, true, 0xc00 + (step.pq << 8));
    default:
      return applyDeviceStep(controller, step);
  }
}

/** The same guest through the XICS hypercalls (ACK = H_XIRR, EOI of what it took, CPPR, IPI for setPq). */
function applyXicsStep(controller: InterruptController, step: GuestStep, guest: XicsGuest): void {
  switch (step.t) {
    case "ack":
      return guest.ack(controller, step.server);
    case "eoi":
      return guest.eoi(controller, step.irq);
    case "cppr":
      return void controller.hcall(step.server, Op.H_CPPR, [BigInt(step.cppr)]);
    case "setPq":
      return void controller.hcall(0, Op.H_IPI, [BigInt(step.irq % SERVERS.length), BigInt(step.pq * 2)]);
    default:
      return applyDeviceStep(controller, step);
  }
}

describe("no lost interrupt across migration (issue 6, xive.md §6)", () => {
  it("XIVE: queue entries in RAM, PQ (ESB GET), OS ring (TIMA) and lines equal a run without migration", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const reference = xiveMachine();
        for (const step of s.before) applyXiveStep(reference.controller, step);
        for (const step of [...s.stoppedOnSource, ...s.stoppedOnDestination])
          applyDeviceStep(reference.controller, step);
        for (const step of s.after) applyXiveStep(reference.controller, step);

        const source = xiveMachine();
        for (const step of s.before) applyXiveStep(source.controller, step);
        source.controller.quiesce();
        for (const step of s.stoppedOnSource) applyDeviceStep(source.controller, step);
        const observed = continueOnDestination(
          source.memory,
          source.controller.exportState(),
          (destination) => s.stoppedOnDestination.forEach((step) => applyDeviceStep(destination, step)),
          (destination) => s.after.forEach((step) => applyXiveStep(destination, step)),
        );
        assert.deepEqual(observed, observeXive(reference.controller, reference.memory, reference.recorder));
      }),
      { numRuns: 300 },
    );
  });

  it("XICS: XIRR, MFRR, pending priority, lines and ICS sources equal a run without migration", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const reference = xicsMachine();
        const referenceGuest = new XicsGuest();
        for (const step of s.before) applyXicsStep(reference.controller, step, referenceGuest);
        for (const step of [...s.stoppedOnSource, ...s.stoppedOnDestination])
          applyDeviceStep(reference.controller, step);
        for (const step of s.after) applyXicsStep(reference.controller, step, referenceGuest);

        const source = xicsMachine();
        const guest = new XicsGuest();
        for (const step of s.before) applyXicsStep(source.controller, step, guest);
        source.controller.quiesce();
        for (const step of s.stoppedOnSource) applyDeviceStep(source.controller, step);
        const observed = continueOnDestination(
          source.memory,
          source.controller.exportState(),
          (destination) => s.stoppedOnDestination.forEach((step) => applyDeviceStep(destination, step)),
          (destination) => s.after.forEach((step) => applyXicsStep(destination, step, guest)),
        );
        assert.deepEqual(observed, observeXics(reference.controller, reference.recorder));
      }),
      { numRuns: 300 },
    );
  });
});
