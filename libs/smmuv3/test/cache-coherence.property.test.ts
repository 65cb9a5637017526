import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Perm, buildCommand, type Smmu } from "../src/index.js";
import type { GuestPageTables } from "./guest-page-tables.js";
import { guestSte, makeSmmu, stage1Device } from "./smmu-fixture.js";

/**
 * Issue 4 property: after any sequence of map / unmap / attach / invalidate, a translation served
 * from the caches equals a fresh walk, so no stale translation survives an invalidation that
 * covers it. The guest follows the architecture's discipline (a PTE change is followed by a TLBI
 * for it); the host's stage-2 changes invalidate by themselves.
 */
const PAGE_VA = 0x4000_0000;
const BLOCK_VA = 0x6000_0000;
const DATA_IPA = 0x100_0000;
const CHUNK = 0x20_0000;
const DEVICES = [
  { sid: 1, vsid: 0x11, asid: 5, cd: 0x8000, tablesAt: 0x10_0000 },
  { sid: 2, vsid: 0x12, asid: 6, cd: 0x8040, tablesAt: 0x18_0000 },
] as const;

type Command =
  | { t: "s1map"; dev: number; page: number; target: number; readOnly: boolean; noAf: boolean }
  | { t: "s1unmap"; dev: number; page: number }
  | { t: "s1block"; dev: number; chunk: number }
  | { t: "s2map"; chunk: number; host: number; perm: number; offset: boolean }
  | { t: "s2unmap"; chunk: number }
  | { t: "ste"; dev: number; kind: "translate" | "bypass" | "abort" | "none" }
  | { t: "tlbi"; which: "all" | "nsnh" | "asid5" | "asid6" }
  | { t: "msi"; bind: boolean; page: number }
  | { t: "probe"; dev: number; page: number; write: boolean };

const dev = fc.integer({ min: 0, max: 1 });
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("s1map" as const),
      dev,
      page: fc.integer({ min: 0, max: 15 }),
      // Targets bunch up in the first pages of 4 chunks so that later stage-2 changes hit them.
      target: fc
        .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
        .map(([c, p]) => c * 512 + p),
      readOnly: fc.boolean(),
      noAf: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("s1unmap" as const), dev, page: fc.integer({ min: 0, max: 15 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("s1block" as const), dev, chunk: fc.integer({ min: 0, max: 3 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("s2map" as const),
      chunk: fc.integer({ min: 0, max: 3 }),
      host: fc.integer({ min: 0, max: 7 }),
      perm: fc.constantFrom(Perm.READ, Perm.WRITE, Perm.READ_WRITE),
      offset: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant("s2unmap" as const), chunk: fc.integer({ min: 0, max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("ste" as const),
      dev,
      kind: fc.constantFrom("translate" as const, "bypass" as const, "abort" as const, "none" as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("tlbi" as const),
      which: fc.constantFrom("all" as const, "nsnh" as const, "asid5" as const, "asid6" as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("msi" as const),
      bind: fc.boolean(),
      page: fc.integer({ min: 0, max: 8 * 512 - 1 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("probe" as const),
      dev,
      page: fc.integer({ min: 0, max: 16 }),
      write: fc.boolean(),
    }),
  },
);

function apply(smmu: Smmu, tables: GuestPageTables[], c: Command): void {
  const asidOf = (d: number) => DEVICES[d]!.asid;
  switch (c.t) {
    case "s1map":
      tables[c.dev]!.map(PAGE_VA + c.page * 0x1000, DATA_IPA + c.target * 0x1000, {
        readOnly: c.readOnly,
        noAccessFlag: c.noAf,
      });
      smmu.invalidateCommands([buildCommand.nhVa(asidOf(c.dev), PAGE_VA + c.page * 0x1000, { leaf: true })]);
      return;
    case "s1unmap":
      tables[c.dev]!.writeDescriptor(tables[c.dev]!.descriptorIpa(PAGE_VA + c.page * 0x1000, 3), 0n);
      smmu.invalidateCommands([buildCommand.nhVa(asidOf(c.dev), PAGE_VA + c.page * 0x1000)]);
      return;
    case "s1block":
      tables[c.dev]!.map(BLOCK_VA, DATA_IPA + c.chunk * CHUNK, { level: 2 });
      // Range TLBI over the 2 MiB block: TG 1 (4K), NUM 15, SCALE 5 = 512 pages.
      smmu.invalidateCommands([buildCommand.nhVa(asidOf(c.dev), BLOCK_VA, { tg: 1, num: 15, scale: 5 })]);
      return;
    case "s2map":
      try {
        smmu.mapStage2(
          DATA_IPA + c.chunk * CHUNK,
          0x1000_0000 + c.host * 2 * CHUNK + (c.offset ? 0x1000 : 0),
          CHUNK,
          c.perm,
        );
      } catch {
        // EEXIST when the chunk is mapped: the property holds either way.
      }
      return;
    case "s2unmap":
      smmu.unmapStage2(DATA_IPA + c.chunk * CHUNK, CHUNK);
      return;
    case "ste": {
      const d = DEVICES[c.dev]!;
      if (c.kind === "none") smmu.clearGuestSte(d.sid);
      else
        smmu.setGuestSte(
          d.sid,
          guestSte({ config: c.kind === "translate" ? 5 : c.kind === "bypass" ? 4 : 0, contextPtr: d.cd }),
        );
      return;
    }
    case "tlbi":
      smmu.invalidateCommands([
        c.which === "all"
          ? buildCommand.nhAll()
          : c.which === "nsnh"
            ? buildCommand.nsnhAll()
            : buildCommand.nhAsid(c.which === "asid5" ? 5 : 6),
      ]);
      return;
    case "msi":
      if (c.bind) {
        try {
          smmu.bindMsi(0xfee0_0000, DATA_IPA + c.page * 0x1000, 0x1000);
        } catch {
          // EBUSY: one binding per domain.
        }
      } else smmu.unbindMsi(0xfee0_0000);
      return;
    case "probe":
      return;
  }
}

function agree(smmu: Smmu, context: string): void {
  for (const d of DEVICES) {
    for (let page = 0; page <= 16; page++) {
      const va = page === 16 ? BLOCK_VA + 0x1_2340 : PAGE_VA + page * 0x1000 + 0x18;
      for (const write of [false, true]) {
        const cached = smmu.translate(d.sid, undefined, va, write);
        const fresh = smmu.translateUncached(d.sid, undefined, va, write);
        const view = (r: typeof cached) => [
          r.outcome,
          r.address,
          r.perm,
          r.sizeBits,
          r.event?.id,
          r.event?.stage2,
          r.event?.ipa,
        ];
        assert.deepEqual(
          view(cached),
          view(fresh),
          `${context}: sid ${d.sid} va 0x${va.toString(16)} ${write ? "write" : "read"}`,
        );
      }
    }
  }
}

describe("caches agree with a fresh walk (issue 4 property)", () => {
  it("after any sequence of map / unmap / attach / invalidate", () => {
    fc.assert(
      fc.property(
        fc.array(command, { minLength: 10, maxLength: 40, size: "max" }),
        fc.constantFrom(8, 4096, 4096),
        (commands, iotlbEntries) => {
          const { smmu, memory } = makeSmmu({ limits: { iotlbEntries, configCacheEntries: 2 } });
          // Tables and CDs live in [0, 16 MiB), always mapped.
          smmu.mapStage2(0, 0, DATA_IPA, Perm.READ_WRITE);
          const tables = DEVICES.map((d) => stage1Device(smmu, memory, d));
          for (const [i, c] of commands.entries()) {
            apply(smmu, tables, c);
            agree(smmu, `after command ${i} ${JSON.stringify(c)}`);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
