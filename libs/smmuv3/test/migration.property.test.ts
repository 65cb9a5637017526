import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SparseGuestMemory } from "@vplane/guest-memory";
import {
  Perm,
  Smmu,
  decodeSmmuDelta,
  encodeSmmuDelta,
  encodeSmmuState,
  mergeSmmuDelta,
  type SmmuState,
  type TranslationResult,
} from "../src/index.js";
import { CHUNK, PAGE_VA, DATA_IPA, DEVICES, apply, command, type Command } from "./random-guest-activity.js";
import { stage1Device } from "./smmu-fixture.js";

/**
 * Issue 6 property: an SMMU exported after any sequence of guest and host activity and imported
 * into a fresh instance (on a copy of guest RAM) answers every later translation, DMA, page
 * response and delivery exactly as the original does, while the same activity goes on on both:
 * the state carries what the guest can observe (configuration, held events and page requests,
 * sequence numbers, cookies) and the caches, which start empty, do not change any answer.
 */
const PRI = { sid: 3, vsid: 0x13, asid: 7, cd: 0x8080, tablesAt: 0x20_0000, pageRequests: true };
const SIDS = [...DEVICES.map((d) => d.sid), PRI.sid];

type Step =
  | { t: "guest"; c: Command }
  | { t: "translate"; dev: number; page: number; write: boolean }
  | { t: "dma"; dev: number; page: number; write: boolean }
  | { t: "deliver"; max: number }
  | { t: "respond"; code: number };

const device = fc.integer({ min: 0, max: SIDS.length - 1 });
const page = fc.integer({ min: 0, max: 17 });
const deviceStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant("translate" as const), dev: device, page, write: fc.boolean() }),
  fc.record({ t: fc.constant("dma" as const), dev: device, page, write: fc.boolean() }),
);
/** What a stopped SMMU still does: translations and DMA reads (DMA writes are refused). */
const stoppedStep: fc.Arbitrary<Step> = deviceStep.map((s) => (s.t === "dma" ? { ...s, write: false } : s));
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: command.map((c): Step => ({ t: "guest", c })) },
  { weight: 3, arbitrary: deviceStep },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("deliver" as const), max: fc.integer({ min: 1, max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("respond" as const), code: fc.integer({ min: 0, max: 2 }) }),
  },
);

/** Guest RAM whose writes also land in `copies` (a perfect RAM copy while the list holds one). */
function mirrored(primary: SparseGuestMemory, copies: readonly SparseGuestMemory[]): SparseGuestMemory {
  return new Proxy(primary, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof key === "string" && key.startsWith("write")) {
        return (...args: unknown[]) => {
          for (const m of [target, ...copies]) method.apply(m, args);
        };
      }
      return method.bind(target);
    },
  });
}

/** Deep copy through JSON (bigints as strings), dropping keys whose value is undefined. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)));
}

/** What a translation tells the device and the guest (not whether the IOTLB served it). */
function observed(r: TranslationResult): unknown {
  return plain({ ...r, hit: undefined });
}

const vaOf = (p: number) => (p === 17 ? 0x6000_0000 + 0x1_2340 : PAGE_VA + p * 0x1000 + 0x18);

/** Runs one step on every SMMU and asserts they all answer the same. */
function run(
  smmus: Smmu[],
  tables: Parameters<typeof apply>[1],
  s: Step,
  now: number,
  context: string,
): void {
  const same = (answers: unknown[]) => {
    for (const a of answers.slice(1)) assert.deepEqual(a, answers[0], context);
  };
  switch (s.t) {
    case "guest":
      for (const smmu of smmus) apply(smmu, tables, s.c);
      return;
    case "translate":
      same(smmus.map((m) => observed(m.translate(SIDS[s.dev]!, undefined, vaOf(s.page), s.write, { now }))));
      return;
    case "dma": {
      const answers = smmus.map((m) => {
        const r = s.write
          ? m.dmaWrite(SIDS[s.dev]!, undefined, vaOf(s.page), Uint8Array.of(s.page, s.dev), { now })
          : m.dmaRead(SIDS[s.dev]!, undefined, vaOf(s.page), 2, { now });
        return plain({ ...r, translation: r.translation && observed(r.translation) });
      });
      same(answers);
      return;
    }
    case "deliver":
      same(smmus.map((m) => plain(m.takeDeliveries(s.max))));
      return;
    case "respond": {
      const cookie = smmus[0]!.listPageRequests()[0]?.cookie;
      if (cookie === undefined) return;
      same(
        smmus.map((m) => {
          try {
            return plain(m.respondPageRequest(cookie, s.code));
          } catch (error) {
            return (error as Error).message;
          }
        }),
      );
      return;
    }
  }
}

/** A booted guest's SMMU `a` whose RAM writes also land in `memB` until the copy stops. */
function bootedSmmu(iotlbEntries: number) {
  const memA = new SparseGuestMemory(2 ** 32);
  const memB = new SparseGuestMemory(2 ** 32);
  const ramCopy = [memB];
  const guest = mirrored(memA, [memB]);
  const limits = { iotlbEntries, configCacheEntries: 2 };
  const a = new Smmu({
    memory: mirrored(memA, ramCopy),
    vmid: 7,
    limits: { ...limits, eventQueueDepth: 4, pageRequests: 3 },
  });
  // Tables and CDs live in [0, 16 MiB), always mapped.
  a.mapStage2(0, 0, DATA_IPA, Perm.READ_WRITE);
  const tables = DEVICES.map((d) => stage1Device(a, guest, d));
  const pri = stage1Device(a, guest, PRI);
  // A booted guest: the first data chunk mapped at stage 2, some pages at stage 1.
  a.mapStage2(DATA_IPA, 0x1000_0000, CHUNK, Perm.READ_WRITE);
  for (let p = 0; p < 16; p++) {
    if (p % 3 === 0) pri.map(PAGE_VA + p * 0x1000, DATA_IPA + p * 0x1000);
    if (p < 8) for (const t of tables) t.map(PAGE_VA + p * 0x1000, DATA_IPA + p * 0x1000);
  }
  return { a, memB, ramCopy, tables, limits };
}

/**
 * The destination `b` (imported from `exported`) and the source go on with the same activity:
 * every answer, delivery and page request the same.
 */
function bothGoOn(
  booted: ReturnType<typeof bootedSmmu>,
  exported: Uint8Array | SmmuState,
  after: Step[],
): void {
  const { a, memB, ramCopy, tables, limits } = booted;
  ramCopy.length = 0; // the destination's RAM goes its own way from here
  const b = Smmu.importState(memB, { vmid: 9, now: 1500, limits }, exported);
  assert.equal(b.dump().iotlb.size, 0);
  a.resume(2000);
  b.resume(2000);
  after.forEach((s, i) => run([a, b], tables, s, 2500, `after ${i} ${JSON.stringify(s)}`));
  run([a, b], tables, { t: "deliver", max: 1e6 }, 2600, "final deliveries");
  assert.deepEqual(plain(b.listPageRequests()), plain(a.listPageRequests()));
  assert.equal(b.deliveredCount, a.deliveredCount);
  for (let dev = 0; dev < SIDS.length; dev++) {
    for (let p = 0; p <= 17; p++)
      run([a, b], tables, { t: "translate", dev, page: p, write: true }, 2700, "probe");
  }
}

describe("migration keeps every answer (issue 6 property)", () => {
  it("export → import on a RAM copy, then the same activity on both: same translations, DMA, deliveries, page requests", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 5, maxLength: 30 }),
        fc.array(stoppedStep, { maxLength: 6 }),
        fc.array(step, { minLength: 5, maxLength: 30 }),
        fc.constantFrom(8, 4096),
        (before, whileStopped, after, iotlbEntries) => {
          const booted = bootedSmmu(iotlbEntries);
          const { a, tables } = booted;
          before.forEach((s, i) => run([a], tables, s, 100, `before ${i}`));
          a.quiesce(1000);
          for (const s of whileStopped) run([a], tables, s, 1200, "stopped");
          assert.deepEqual(a.takeDeliveries(), []);
          bothGoOn(booted, a.exportState(), after);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("with pre-copy (issue 14): the deltas read before, between and after the guest's changes and at the stop merge into the export, and every answer stays the same", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 5, maxLength: 20 }),
        fc.array(step, { maxLength: 15 }),
        fc.array(step, { maxLength: 15 }),
        fc.array(stoppedStep, { maxLength: 6 }),
        fc.array(step, { minLength: 5, maxLength: 20 }),
        (before, between, afterLast, whileStopped, after) => {
          const booted = bootedSmmu(8);
          const { a, tables } = booted;
          let merged: SmmuState | undefined;
          const read = (restart: boolean, now: number) => {
            const delta = a.readChanges(restart, now);
            if (delta) merged = mergeSmmuDelta(merged, decodeSmmuDelta(encodeSmmuDelta(delta)));
          };
          before.forEach((s, i) => run([a], tables, s, 100, `before ${i}`));
          read(true, 100);
          between.forEach((s, i) => run([a], tables, s, 200, `between ${i}`));
          read(false, 200);
          afterLast.forEach((s, i) => run([a], tables, s, 300, `after the last read ${i}`));
          a.quiesce(1000);
          for (const s of whileStopped) run([a], tables, s, 1200, "stopped");
          read(false, 1300);
          const exported = a.exportState();
          assert.equal(
            Buffer.from(encodeSmmuState(merged!)).toString("hex"),
            Buffer.from(exported).toString("hex"),
          );
          bothGoOn(booted, merged!, after);
        },
      ),
      { numRuns: 60 },
    );
  });
});
