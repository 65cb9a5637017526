import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { HcallOpcode as Op } from "../src/hcall-codes.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import {
  LSIS,
  MSIS,
  SERVERS,
  SOURCES,
  continueOnDestination,
  observeXics,
  observeXive,
  xicsMachine,
  xiveMachine,
} from "./migration-fixtures.js";

/** What a device does (it goes on while the guest is stopped). */
type DeviceStep = { t: "trigger"; irq: number } | { t: "level"; irq: number; level: boolean };
/** What the guest does (only while it runs). */
type GuestStep =
  | DeviceStep
  | { t: "eoi"; irq: number }
  | { t: "ack"; server: number }
  | { t: "cppr"; server: number; cppr: number }
  | { t: "setPq"; irq: number; pq: number };

const deviceStep: fc.Arbitrary<DeviceStep> = fc.oneof(
  fc.record({ t: fc.constant("trigger" as const), irq: fc.constantFrom(...MSIS, ...LSIS) }),
  fc.record({ t: fc.constant("level" as const), irq: fc.constantFrom(...LSIS), level: fc.boolean() }),
);

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

function applyDeviceStep(controller: InterruptController, step: DeviceStep): void {
  if (step.t === "trigger") controller.trigger(step.irq);
  else controller.setIrq(step.irq, step.level);
}

/** Guest steps through the XIVE guest's pages: ESB loads and the TIMA OS page. */
function applyXiveStep(controller: InterruptController, step: GuestStep): void {
  const xive = controller.mutableXive("guest");
  switch (step.t) {
    case "eoi":
      return void xive.esbLoad(step.irq, true, 0x000);
    case "ack":
      return void xive.timaLoad(step.server, 0x2_0810, 2);
    case "cppr":
      return xive.timaStore(step.server, 0x2_0011, 1, BigInt(step.cppr));
    case "setPq":
      return void xive.esbLoad(step.irq, true, 0xc00 + (step.pq << 8));
    default:
      return applyDeviceStep(controller, step);
  }
}

/** The same guest through the XICS hypercalls (ACK = H_XIRR, EOI of what it took, CPPR, IPI for setPq). */
function applyXicsStep(controller: InterruptController, step: GuestStep, taken: Map<number, bigint[]>): void {
  switch (step.t) {
    case "ack": {
      const xirr = controller.hcall(step.server, Op.H_XIRR, []).outputs[0]!;
      if ((xirr & 0xff_ffffn) !== 0n) taken.set(step.server, [...(taken.get(step.server) ?? []), xirr]);
      return;
    }
    case "eoi": {
      const server = step.irq % SERVERS.length;
      const xirr = taken.get(server)?.pop();
      if (xirr !== undefined) controller.hcall(server, Op.H_EOI, [xirr]);
      return;
    }
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
        const takenRef = new Map<number, bigint[]>();
        for (const step of s.before) applyXicsStep(reference.controller, step, takenRef);
        for (const step of [...s.stoppedOnSource, ...s.stoppedOnDestination])
          applyDeviceStep(reference.controller, step);
        for (const step of s.after) applyXicsStep(reference.controller, step, takenRef);

        const source = xicsMachine();
        const taken = new Map<number, bigint[]>();
        for (const step of s.before) applyXicsStep(source.controller, step, taken);
        source.controller.quiesce();
        for (const step of s.stoppedOnSource) applyDeviceStep(source.controller, step);
        const observed = continueOnDestination(
          source.memory,
          source.controller.exportState(),
          (destination) => s.stoppedOnDestination.forEach((step) => applyDeviceStep(destination, step)),
          (destination) => s.after.forEach((step) => applyXicsStep(destination, step, taken)),
        );
        assert.deepEqual(observed, observeXics(reference.controller, reference.recorder));
      }),
      { numRuns: 300 },
    );
  });
});
