import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { Perm, Smmu } from "../src/index.js";
import { BLOCK_VA, CHUNK, DATA_IPA, DEVICES, PAGE_VA, apply, command } from "./random-guest-activity.js";
import { stage1Device } from "./smmu-fixture.js";

/** Test support: sparse guest RAM that hands every write (address, length) to `onWrite` first. */
class RecordingGuestMemory extends SparseGuestMemory {
  onWrite: (address: number, length: number) => void = () => undefined;

  protected override writeRaw(address: number, source: Uint8Array): void {
    this.onWrite(address, source.length);
    super.writeRaw(address, source);
  }
}

/** A device's DMA write: anywhere over the pages and the block the guest maps, crossing pages. */
const dmaWrite = fc.record({
  t: fc.constant("dma" as const),
  dev: fc.integer({ min: 0, max: 1 }),
  at: fc.oneof(
    fc.integer({ min: 0, max: 17 * 0x1000 }).map((offset) => PAGE_VA - 0x1000 + offset),
    fc.integer({ min: 0, max: 0x20_0000 + 0x1000 }).map((offset) => BLOCK_VA - 0x800 + offset),
  ),
  length: fc.integer({ min: 1, max: 3 * 0x1000 }),
});

/** Merges [start, end) intervals (sorted copy) so that two lists of writes compare as byte sets. */
function merged(intervals: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [s, e] of [...intervals].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * Where a completed DMA write of `length` bytes at `iova` must land, from fresh uncached walks
 * 4 KiB page by page (the DMA itself pieces by whatever its cached translations say): each
 * byte at the address its own page translates to, doorbell pages left out.
 */
function expectedWrites(smmu: Smmu, sid: number, iova: number, length: number): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 0; k < length;) {
    const n = Math.min(length - k, 0x1000 - ((iova + k) % 0x1000));
    const t = smmu.translateUncached(sid, undefined, iova + k, true);
    if (t.outcome === "translated") out.push([t.address, t.address + n]);
    k += n;
  }
  return out;
}

/**
 * Issue 17 point 2, swept to the SMMU: under any guest and host activity (stage-1 page and
 * block maps and unmaps with their TLBIs, stage-2 maps and unmaps, STE changes, MSI doorbell
 * binding), the bytes a device's DMA write puts in guest RAM are exactly those a fresh walk of
 * each page names, inside a stage-2 mapping that grants write and never in the page tables and
 * context descriptors below DATA_IPA; a DMA moves all its bytes (to RAM or the doorbell) or none.
 */
describe("no DMA write outside the memory the configuration maps writable (issue 17 point 2 sweep)", () => {
  it("under any sequence of configuration changes and DMA writes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 2, arbitrary: command }, { weight: 3, arbitrary: dmaWrite }), {
          minLength: 5,
          maxLength: 40,
        }),
        (commands) => {
          const memory = new RecordingGuestMemory(2 ** 32);
          const smmu = new Smmu({ memory, vmid: 7 });
          smmu.mapStage2(0, 0, DATA_IPA, Perm.READ_WRITE);
          const tables = DEVICES.map((d) => stage1Device(smmu, memory, d));
          // A booted guest: its data chunks mapped writable in stage 2, and its pages scattered
          // over them in stage 1 (neighbouring pages far apart), before the random activity.
          for (let chunk = 0; chunk < 4; chunk++)
            smmu.mapStage2(DATA_IPA + chunk * CHUNK, 0x1000_0000 + chunk * 2 * CHUNK, CHUNK, Perm.READ_WRITE);
          for (const table of tables)
            for (let page = 0; page < 16; page++)
              table.map(PAGE_VA + page * 0x1000, DATA_IPA + (page % 4) * CHUNK + (page >> 2) * 0x1000);
          const writes: [number, number][] = [];
          memory.onWrite = (at, length) => writes.push([at, at + length]);
          for (const [i, c] of commands.entries()) {
            if (c.t !== "dma") {
              memory.onWrite = () => undefined; // the guest editing its own tables
              apply(smmu, tables, c);
              memory.onWrite = (at, length) => writes.push([at, at + length]);
              continue;
            }
            writes.length = 0;
            const result = smmu.dmaWrite(
              DEVICES[c.dev]!.sid,
              undefined,
              c.at,
              new Uint8Array(c.length).fill(0xa5),
            );
            const context = `command ${i} ${JSON.stringify(c)}`;
            const inRam = writes.reduce((n, [s, e]) => n + e - s, 0);
            const toDoorbell = result.msiWrites.reduce((n, w) => n + w.data.length, 0);
            if (result.outcome === "completed")
              assert.equal(inRam + toDoorbell, c.length, `${context}: all bytes`);
            else assert.equal(inRam, 0, `${context}: a ${result.outcome} moves nothing`);
            if (result.outcome === "completed") {
              assert.deepEqual(
                merged(writes),
                merged(expectedWrites(smmu, DEVICES[c.dev]!.sid, c.at, c.length)),
                `${context}: the bytes land where a fresh walk of each page says`,
              );
            }
            const writable = smmu.stage2Mappings.filter((m) => (m.perm & Perm.WRITE) !== 0);
            for (const [start, end] of writes) {
              assert.ok(start >= DATA_IPA, `${context}: wrote [0x${start.toString(16)}, …) over the tables`);
              assert.ok(
                writable.some((m) => start >= m.hostAddress && end <= m.hostAddress + m.size),
                `${context}: wrote [0x${start.toString(16)}, 0x${end.toString(16)}) outside every writable stage-2 mapping`,
              );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
