// The kinds of change a XICS controller's pre-copy tracking reads (issue 14), on the migration
// tests' XICS machine (migration-fixtures xicsMachine): what the tracking tests
// (precopy-tracking) and the destination's in-place stop tests (xics-stop-delta-in-place) both
// go through.
import { HcallOpcode } from "../src/hcall-codes.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { LSIS, MSIS } from "./migration-fixtures.js";

const LSI = LSIS[0]!;

/** A XICS change after the first read, and how many ICS sources and ICPs it may move (at most). */
export interface XicsChange {
  name: string;
  apply(controller: InterruptController): void;
  moves: { sources?: number; icps?: number; lists?: boolean };
}

export const XICS_MSI = MSIS[0]!; // routed to a vCPU (migration-fixtures ROUTES)

export const XICS_CHANGES: XicsChange[] = [
  {
    name: "ibm,set-xive (server, priority, saved priority)",
    apply: (c) => void c.xics("t").setXive(XICS_MSI, 1, 3),
    moves: { sources: 1 },
  },
  { name: "ibm,int-off", apply: (c) => void c.xics("t").intOff(XICS_MSI), moves: { sources: 1 } },
  {
    name: "a masked MSI's trigger (MASKED_PENDING), then int-on delivers it (XIRR)",
    apply: (c) => {
      c.xics("t").intOff(XICS_MSI);
      c.trigger(XICS_MSI);
      c.xics("t").intOn(XICS_MSI);
    },
    moves: { sources: 1, icps: 1 },
  },
  {
    name: "an MSI delivered (XIRR, pending priority)",
    apply: (c) => void c.trigger(XICS_MSI),
    moves: { icps: 1 },
  },
  {
    name: "an LSI asserted (ASSERTED, SENT; XIRR)",
    apply: (c) => void c.setIrq(LSI, true),
    moves: { sources: 1, icps: 1 },
  },
  { name: "H_CPPR", apply: (c) => void c.hcall(2, HcallOpcode.H_CPPR, [0x5n]), moves: { icps: 1 } },
  {
    name: "H_IPI (MFRR, the IPI presented)",
    apply: (c) => void c.hcall(0, HcallOpcode.H_IPI, [1n, 0x2n]),
    moves: { icps: 1 },
  },
  {
    name: "an MSI delivered and accepted (H_XIRR: CPPR takes its priority, XISR cleared)",
    apply: (c) => {
      c.trigger(XICS_MSI);
      c.hcall(c.xics("t").getXive(XICS_MSI)[1], HcallOpcode.H_XIRR, []);
    },
    moves: { icps: 1 },
  },
  {
    name: "a source claimed (the machine's sources)",
    apply: (c) => c.initSource(0x1306),
    moves: { sources: 1, lists: true },
  },
  { name: "a vCPU connected (a new ICP)", apply: (c) => c.connectVcpu(3), moves: { icps: 1, lists: true } },
];
