import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Perm, type Smmu } from "../src/index.js";
import { BLOCK_VA, DATA_IPA, DEVICES, PAGE_VA, apply, command } from "./random-guest-activity.js";
import { makeSmmu, stage1Device } from "./smmu-fixture.js";

/**
 * Issue 4 property: after any sequence of map / unmap / attach / invalidate, a translation served
 * from the caches equals a fresh walk, so no stale translation survives an invalidation that
 * covers it. The guest follows the architecture's discipline (a PTE change is followed by a TLBI
 * for it); the host's stage-2 changes invalidate by themselves.
 */
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
