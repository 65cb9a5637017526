import fc from "fast-check";
import { Perm, buildCommand, type Smmu } from "../src/index.js";
import type { GuestPageTables } from "./guest-page-tables.js";
import { guestSte } from "./smmu-fixture.js";

/**
 * Test support: random guest and host activity on an SMMU with two stage-1 devices: the guest
 * edits its page tables (and invalidates as the architecture requires), the host maps and
 * unmaps stage 2, STEs change, TLBIs, MSI doorbell binding, and probes.
 */
export const PAGE_VA = 0x4000_0000;
export const BLOCK_VA = 0x6000_0000;
export const DATA_IPA = 0x100_0000;
export const CHUNK = 0x20_0000;
export const DEVICES = [
  { sid: 1, vsid: 0x11, asid: 5, cd: 0x8000, tablesAt: 0x10_0000 },
  { sid: 2, vsid: 0x12, asid: 6, cd: 0x8040, tablesAt: 0x18_0000 },
] as const;

export type Command =
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
export const command: fc.Arbitrary<Command> = fc.oneof(
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

export function apply(smmu: Smmu, tables: GuestPageTables[], c: Command): void {
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
