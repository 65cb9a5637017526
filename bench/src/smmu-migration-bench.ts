import { SparseGuestMemory } from "@vplane/guest-memory";
import { HWPT_FAULT_ID_VALID, Perm, Smmu, encodeContextDescriptor } from "@vplane/smmuv3";
import { deviceStateRows } from "./device-state-rounds.js";
import type { BenchRow } from "./result-table.js";

/** Issue 6's benchmark point for the IOMMU: 256 StreamIDs. */
const STREAM_IDS = 256;
/** Guest RAM mapped at stage 2 in 64 pieces of 32 MiB (a VMM maps RAM regions, not one range). */
const RAM = 2 * 1024 * 1024 * 1024;
const MAPPINGS = 64;
const IOVA = 0x5000_0000;

/**
 * A booted guest at the benchmark's size: stage 2 over the RAM, 256 devices each with its own
 * vSID, CD (ASID) and 4-level stage-1 table mapping one page, a quarter of them linked to the
 * fault queue; an MSI doorbell; each device has translated once (warm caches, which the state
 * leaves out), every eighth has a fault event queued and every sixteenth a page request waiting.
 */
function bootedSmmu(memory: SparseGuestMemory): Smmu {
  const smmu = new Smmu({ memory, vmid: 1, limits: { iotlbEntries: 4096, eventQueueDepth: 1024 } });
  const piece = RAM / MAPPINGS;
  for (let i = 0; i < MAPPINGS; i++) smmu.mapStage2(i * piece, i * piece, piece, Perm.READ_WRITE);
  for (let d = 0; d < STREAM_IDS; d++) {
    // Per device: CD at 0x10_0000 + 64 d; tables at 0x100_0000 + 16 KiB d (4 levels, one page each).
    const cd = 0x10_0000 + d * 64;
    const tables = 0x100_0000 + d * 0x4000;
    for (let level = 0; level < 3; level++) {
      const shift = 39 - 9 * level;
      const at = tables + level * 0x1000 + (Math.floor(IOVA / 2 ** shift) % 512) * 8;
      memory.writeU64LE(at, BigInt(tables + (level + 1) * 0x1000) | 3n);
    }
    const leaf = tables + 3 * 0x1000 + (Math.floor(IOVA / 4096) % 512) * 8;
    memory.writeU64LE(leaf, BigInt(0x4000_0000 + d * 0x1000) | (1n << 10n) | 3n);
    encodeContextDescriptor({ asid: d + 1, t0sz: 16, tg0: 0, ttb0: tables }).forEach((w, i) =>
      memory.writeU64LE(cd + i * 8, w),
    );
    smmu.attachDevice(0x100 + d, 0x1000 + d);
    const ste0 = 1n | (5n << 1n) | BigInt(cd);
    smmu.setGuestSte(0x100 + d, [ste0, 0n], d % 4 === 0 ? HWPT_FAULT_ID_VALID : 0);
    smmu.translate(0x100 + d, undefined, IOVA + 8, false);
    if (d % 8 === 1) smmu.translate(0x100 + d, undefined, IOVA + 0x20_0000, false);
    if (d % 16 === 0) smmu.translate(0x100 + d, undefined, IOVA + 0x20_0000, false);
  }
  smmu.bindMsi(0xfee0_0000, 0x7fff_0000, 0x1000);
  return smmu;
}

/**
 * Device-state downtime of one SMMU alone, in one process (no gRPC, no transfer): quiesce,
 * export, import into a fresh SMMU on the same RAM (which replays stage 2, devices and guest
 * STEs, and restores queued events and page requests), resume. Each phase is timed per round;
 * the rows give rounds/s and the p50/p99 of each phase.
 */
export function smmuMigrationBench(rounds = 50): Promise<BenchRow[]> {
  const memory = new SparseGuestMemory(RAM);
  let smmu = bootedSmmu(memory);
  let stateBytes = 0;
  let now = 0;
  const rows = deviceStateRows(
    () =>
      `smmuv3 device state (${STREAM_IDS} StreamIDs, ${MAPPINGS} stage-2 mappings, ${Math.round(stateBytes / 1024)} KiB)`,
    ["quiesce", "export", "import (fresh SMMU: stage 2, devices, STEs replayed)", "resume"],
    { rounds, warmUps: 5 },
    () => {
      now++;
      const t0 = performance.now();
      smmu.quiesce(now);
      const t1 = performance.now();
      const state = smmu.exportState();
      const t2 = performance.now();
      const imported = Smmu.importState(
        memory,
        { vmid: 2 + (now & 1), limits: { iotlbEntries: 4096 } },
        state,
      );
      const t3 = performance.now();
      imported.resume(now);
      const t4 = performance.now();
      smmu = imported;
      stateBytes = state.length;
      return [t0, t1, t2, t3, t4];
    },
  );
  if (smmu.translate(0x100 + 7, undefined, IOVA + 8, false).address !== 0x4000_7008)
    throw new Error("the migrated SMMU does not translate as the original");
  return Promise.resolve(rows);
}
