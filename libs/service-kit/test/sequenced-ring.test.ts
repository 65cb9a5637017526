import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SequencedRing } from "../src/sequenced-ring.js";

describe("SequencedRing: sequences from `first`, the last `capacity` held, watchers woken", () => {
  it("a sequence is in its slot until `capacity` newer ones push it out, then reads as no longer held", () => {
    const ring = new SequencedRing(3, 5);
    assert.equal(ring.place(5), undefined); // not yet happened
    const slots = [ring.append(), ring.append(), ring.append(), ring.append()];
    assert.deepEqual(slots, [0, 1, 2, 0]);
    assert.equal(ring.next, 9);
    assert.equal(ring.oldest, 6);
    assert.deepEqual(ring.place(5), { held: false, oldest: 6 });
    assert.deepEqual(ring.place(8), { held: true, slot: 0 });
    assert.equal(ring.place(9), undefined);
  });

  it("wakes a watcher at the next append, and every watcher on close or its own abort", async () => {
    const ring = new SequencedRing(4);
    const woken = ring.waitForNext(new AbortController().signal);
    ring.append();
    await woken;
    const closing = ring.waitForNext(new AbortController().signal);
    ring.close();
    await closing;
    const abort = new AbortController();
    const aborted = ring.waitForNext(abort.signal);
    abort.abort();
    await aborted;
  });
});
