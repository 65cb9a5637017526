import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SignalLog } from "../src/signal-log.js";

describe("signal log (resumable vCPU signal stream)", () => {
  it("numbers events from 1 and gives a dropped marker for a resume point older than the buffer", () => {
    const log = new SignalLog(4);
    for (let i = 0; i < 6; i++) log.record(i, i % 2 === 0);
    assert.equal(log.lastSequence, 6);
    assert.equal(log.oldestSequence, 3);
    assert.deepEqual(log.read(1), { kind: "dropped", sequence: 3n, count: 2n });
    const third = log.read(3);
    assert.equal(third?.kind, "signal");
    assert.deepEqual(third?.kind === "signal" ? [third.sequence, third.server, third.raised] : [], [
      3n,
      2,
      true,
    ]);
    assert.equal(log.read(7), undefined);
  });

  it("wakes a waiter on the next event", async () => {
    const log = new SignalLog(4);
    const waited = log.waitForNext(new AbortController().signal);
    log.record(0, true);
    await waited;
    assert.equal(log.read(1)?.kind, "signal");
  });
});
