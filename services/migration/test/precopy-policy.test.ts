// When device pre-copy stops iterating (issue 14): nothing left stops it; a shrinking remainder
// iterates; a steady trickle that fits the downtime limit stops (the device delta counted in the
// expected downtime); one that does not fit fails with PRECOPY_NOT_CONVERGING once it reached no
// new low for the no-progress timeout, never looping for ever.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PreCopyPolicy, type IterationMeasure } from "../src/live-migration/precopy-policy.js";
import { mergeRanges, pagesOf } from "../src/devices/dirty-pages.js";

/** An iteration that moved `bytes` in 10 ms (1 ms of it the acknowledgement), `remaining` left. */
const measure = (at: number, bytes: number, remaining: number): IterationMeasure => ({
  bytes,
  durationMs: 10,
  acknowledgeMs: 1,
  remainingBytes: remaining,
  at,
});

describe("pre-copy policy", () => {
  test("nothing left after the first iteration: stop", () => {
    const policy = new PreCopyPolicy(0, 30_000, 0);
    assert.deepEqual(policy.next(measure(10, 100_000, 0)), { t: "stop", expectedDowntimeMs: 2 });
  });

  test("a shrinking remainder iterates; once it stops shrinking within the limit, stop", () => {
    const policy = new PreCopyPolicy(300, 30_000, 0);
    assert.equal(policy.next(measure(10, 100_000, 5000)).t, "iterate");
    assert.equal(policy.next(measure(20, 5000, 400)).t, "iterate");
    const step = policy.next(measure(30, 400, 420)); // a guest's steady trickle
    assert.equal(step.t, "stop");
    // 2 ms of round trips + 420 bytes at 10,000 bytes/ms (the first iteration's rate).
    assert.ok(step.t === "stop" && Math.abs(step.expectedDowntimeMs - 2.042) < 1e-9);
  });

  test("the downtime limit counts the device delta: a remainder too big to move in time keeps iterating", () => {
    const policy = new PreCopyPolicy(5, 30_000, 0);
    assert.equal(policy.next(measure(10, 100_000, 50_000)).t, "iterate"); // 2 + 5 ms expected: over 5
    assert.equal(policy.next(measure(20, 50_000, 50_000)).t, "iterate"); // not shrinking, still over
    assert.equal(policy.next(measure(30, 50_000, 20_000)).t, "iterate"); // shrinking
    assert.equal(policy.next(measure(40, 20_000, 20_000)).t, "stop"); // 2 + 2 ms: fits, not shrinking
  });

  test("no new low for the no-progress timeout while over the limit: PRECOPY_NOT_CONVERGING", () => {
    const policy = new PreCopyPolicy(1, 100, 0);
    assert.equal(policy.next(measure(10, 10_000, 1000)).t, "iterate");
    assert.equal(policy.next(measure(60, 1000, 2000)).t, "iterate");
    assert.throws(() => policy.next(measure(120, 2000, 4000)), {
      code: "DEADLINE_EXCEEDED",
      reason: "PRECOPY_NOT_CONVERGING",
    });
  });
});

describe("dirty pages of several services", () => {
  test("ranges merge where they touch or overlap, and read as pages of the largest size", () => {
    const k64 = 0x1_0000n;
    const merged = mergeRanges([
      [{ address: 0n, bytes: 2n * k64 }],
      [
        { address: 0x1000n, bytes: 0x1000n },
        { address: 2n * k64, bytes: 0x1000n },
        { address: 8n * k64, bytes: 0x1000n },
      ],
    ]);
    assert.deepEqual(merged, [
      { address: 0n, bytes: 2n * k64 + 0x1000n },
      { address: 8n * k64, bytes: 0x1000n },
    ]);
    assert.deepEqual(pagesOf(merged, k64).pages, [0n, k64, 2n * k64, 8n * k64]);
  });
});
