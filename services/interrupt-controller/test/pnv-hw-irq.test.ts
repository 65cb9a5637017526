import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FileGuestMemory } from "@vplane/guest-memory";
import { AccessKind } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { OS_PAGE, QADDR, RAM_BYTES, esb, routedXive, tima } from "./conformance-fixtures.js";
import { collectSignals, suiteHarness } from "./service-harness.js";

describe("conformance: QEMU pnv-xive2 test_hw_irq ported to the OS ring, through gRPC (xive.md §9)", () => {
  const h = suiteHarness();

  it("SET_PQ_00, trigger → PQ 10, NSR 0x80, ACK = 0x80<<8|6, EQ word = EISN, EOI → PQ 00, CPPR 0xFF lowers", async () => {
    const name = await routedXive(h, "pnv");
    const signals = collectSignals(h.client.watchVcpuSignals({ name, resumeAfter: 0n }));
    await new Promise((r) => setTimeout(r, 50)); // the stream is open before the events
    assert.equal(
      (await h.call("esbAccess", esb(name, 0x1300, 0xc00))).value,
      1n,
      "SET_PQ_00 returns the old PQ 01",
    );
    await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, 0xffn));

    const triggered = await h.call("triggerSources", { name, irqs: [0x1300] });
    assert.deepEqual(triggered, { delivered: 1, coalesced: 0, masked: 0, dropped: 0 });
    assert.equal((await h.call("getSourceConfig", { name, irq: 0x1300 })).source!.pq, 0b10);
    const word0 = (await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x10, 4, AccessKind.ACCESS_KIND_LOAD)))
      .value;
    assert.equal(word0 >> 16n, 0x80ffn, "NSR 0x80, CPPR 0xFF");
    const [raised] = await signals.next(1);
    assert.deepEqual([raised!.sequence, raised!.server, raised!.raised], [1n, 0, true]);

    const ack = await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x810, 2, AccessKind.ACCESS_KIND_LOAD));
    assert.equal(ack.value, (0x80n << 8n) | 6n);

    // The VMM's view of the shared guest RAM file holds the event.
    const ram = new FileGuestMemory(join(h.dataDir, "pnv.ram"), Number(RAM_BYTES));
    assert.equal(ram.readU32BE(Number(QADDR)), 0x8000_1300);
    ram.close();

    assert.equal((await h.call("esbAccess", esb(name, 0x1300, 0x000))).value, 0n, "EOI: no re-trigger");
    assert.equal((await h.call("getSourceConfig", { name, irq: 0x1300 })).source!.pq, 0b00);
    await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, 0xffn));
    const after = (await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x10, 4, AccessKind.ACCESS_KIND_LOAD)))
      .value;
    assert.equal(after >> 24n, 0n, "NSR 0");
    const events = await signals.next(2);
    assert.deepEqual([events[1]!.sequence, events[1]!.raised], [2n, false], "ACK lowered the line");
    assert.equal(signals.messages.length, 2, "CPPR 0xFF with nothing pending changes nothing");
    signals.cancel();
  });

  it("WatchVcpuSignals resumes after a sequence number", async () => {
    const name = "vms/pnv/controller";
    const resumed = collectSignals(h.client.watchVcpuSignals({ name, resumeAfter: 1n }));
    const [first] = await resumed.next(1);
    assert.deepEqual([first!.sequence, first!.raised, first!.dropped], [2n, false, 0n]);
    resumed.cancel();
  });
});
