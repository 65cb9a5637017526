// The kinds of change an SMMU's pre-copy tracking reads (issue 14), on a running SMMU: what
// the tracking tests (precopy-tracking) and the destination's in-place stop tests
// (stop-delta-in-place) both go through.
import { HWPT_FAULT_ID_VALID, Perm, type Smmu } from "../src/index.js";
import { guestSte, makeSmmu, seedPasidTable, stage1Device } from "./smmu-fixture.js";

export const DATA = 0x4000_0000;
export const VA = 0x1000_0000;

/** An SMMU with stage 2 over its first 16 MiB and a data chunk, two nested devices and a stage-2-only one. */
export function runningSmmu(): Smmu {
  return runningMachine().smmu;
}

/** The same SMMU with its guest RAM. */
export function runningMachine() {
  const { smmu, memory } = makeSmmu({ limits: { eventQueueDepth: 4 } });
  smmu.mapStage2(0, 0, 0x100_0000, Perm.READ_WRITE);
  smmu.mapStage2(DATA, 0x200_0000, 0x20_0000, Perm.READ_WRITE);
  stage1Device(smmu, memory, { sid: 1, vsid: 0x11, asid: 5 }).map(VA, DATA);
  stage1Device(smmu, memory, { sid: 2, vsid: 0x12, asid: 6, cd: 0x8040, tablesAt: 0x18_0000 });
  smmu.attachDevice(3, 0x13);
  return { smmu, memory };
}

/** One change after the first read, and how many mappings and devices it may move (at most). */
export interface Change {
  name: string;
  apply(smmu: Smmu): void;
  moves: { mappings?: number; devices?: number };
}

export const CHANGES: Change[] = [
  {
    name: "a stage-2 mapping made (MAP_DMA)",
    apply: (s) => s.mapStage2(0x8000_0000, 0x400_0000, 0x1000, Perm.READ),
    moves: { mappings: 1 },
  },
  {
    name: "a stage-2 mapping removed (UNMAP_DMA)",
    apply: (s) => s.unmapStage2(DATA, 0x20_0000),
    moves: { mappings: 1 },
  },
  {
    name: "two stage-2 mappings removed by one UNMAP_DMA",
    apply: (s) => {
      s.mapStage2(0x8000_0000, 0x400_0000, 0x1000, Perm.READ);
      s.unmapStage2(0, 0x8000_1000);
    },
    moves: { mappings: 2 },
  },
  {
    name: "a mapping replaced at the same IPA (unmap, map elsewhere)",
    apply: (s) => {
      s.unmapStage2(DATA, 0x20_0000);
      s.mapStage2(DATA, 0x400_0000, 0x20_0000, Perm.READ);
    },
    moves: { mappings: 1 },
  },
  { name: "a device bound (VDEVICE_ALLOC)", apply: (s) => s.attachDevice(9, 0x19), moves: { devices: 1 } },
  { name: "a device unbound", apply: (s) => s.detachDevice(3), moves: { devices: 1 } },
  {
    name: "a device unbound and bound again with another vSID",
    apply: (s) => {
      s.detachDevice(3);
      s.attachDevice(3, 0x23);
    },
    moves: { devices: 1 },
  },
  {
    name: "a guest STE installed (HWPT_ALLOC + attach)",
    apply: (s) => s.setGuestSte(3, guestSte({ config: 4 })),
    moves: { devices: 1 },
  },
  {
    name: "a guest STE replaced, its HWPT linked to a fault queue (page requests)",
    apply: (s) => s.setGuestSte(2, guestSte({ contextPtr: 0x8040, eats: 1 }), HWPT_FAULT_ID_VALID),
    moves: { devices: 1 },
  },
  { name: "a guest STE removed", apply: (s) => s.clearGuestSte(1), moves: { devices: 1 } },
  {
    name: "the seed PASID table attached (the guest STEs removed first)",
    apply: (s) => {
      s.clearGuestSte(1);
      s.clearGuestSte(2);
      s.attachPasidTable(seedPasidTable(0x8000n));
    },
    moves: { devices: 2 },
  },
  { name: "an MSI doorbell bound", apply: (s) => s.bindMsi(0xfee0_0000, 0x80_0000, 0x1000), moves: {} },
  {
    name: "an event recorded (a stage-2 fault of a bound device)",
    apply: (s) => s.translate(3, undefined, 0x9000_0000, false),
    moves: {},
  },
  {
    name: "events taken by the consumer (delivered count)",
    apply: (s) => {
      s.translate(3, undefined, 0x9000_0000, false);
      s.takeDeliveries();
    },
    moves: {},
  },
  {
    name: "a page request raised (a device whose faults become page requests)",
    apply: (s) => {
      s.setGuestSte(2, guestSte({ contextPtr: 0x8040 }), HWPT_FAULT_ID_VALID);
      s.translate(2, undefined, VA + 0x30_0000, true, { now: 10 });
    },
    moves: { devices: 1 },
  },
];
