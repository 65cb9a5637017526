// What the migration property tests' devices and guests do to a controller: a device triggers or
// moves a line (it goes on while the guest is stopped); a guest acknowledges and EOIs, through
// XIVE's pages (TIMA OS ring, ESB) or the XICS hypercalls.
import fc from "fast-check";
import { HcallOpcode as Op } from "../src/hcall-codes.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { LSIS, MSIS, SERVERS } from "./migration-fixtures.js";

export type DeviceStep = { t: "trigger"; irq: number } | { t: "level"; irq: number; level: boolean };

export const deviceStep: fc.Arbitrary<DeviceStep> = fc.oneof(
  fc.record({ t: fc.constant("trigger" as const), irq: fc.constantFrom(...MSIS, ...LSIS) }),
  fc.record({ t: fc.constant("level" as const), irq: fc.constantFrom(...LSIS), level: fc.boolean() }),
);

export function applyDeviceStep(controller: InterruptController, step: DeviceStep): void {
  if (step.t === "trigger") controller.trigger(step.irq);
  else controller.setIrq(step.irq, step.level);
}

/** A XIVE guest's acknowledge: a 2-byte load of the OS ring's ACK_OS_REG (TIMA). */
export function xiveAck(controller: InterruptController, server: number): void {
  controller.mutableXive("guest").timaLoad(server, 0x2_0810, 2);
}

/** A XIVE guest's EOI of a source: an ESB load at the EOI offset. */
export function xiveEoi(controller: InterruptController, irq: number): void {
  controller.mutableXive("guest").esbLoad(irq, true, 0x000);
}

/**
 * A XICS guest: acknowledges with H_XIRR and keeps what each vCPU took, to EOI it later with
 * H_EOI (the vCPU of source N is N mod the server count). One guest may span a migration: what it
 * took on the source it EOIs on the destination.
 */
export class XicsGuest {
  private readonly taken = new Map<number, bigint[]>();

  ack(controller: InterruptController, server: number): void {
    const xirr = controller.hcall(server, Op.H_XIRR, []).outputs[0]!;
    if ((xirr & 0xff_ffffn) !== 0n) this.taken.set(server, [...(this.taken.get(server) ?? []), xirr]);
  }

  eoi(controller: InterruptController, irq: number): void {
    const server = irq % SERVERS.length;
    const xirr = this.taken.get(server)?.pop();
    if (xirr !== undefined) controller.hcall(server, Op.H_EOI, [xirr]);
  }
}
