import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AccessKind, EsbPage } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { EventStreamMetrics, ServiceMetrics, type CallContext } from "@vplane/service-kit";
import { sampleValue, scrapeMetrics } from "@vplane/service-kit/testing";
import type { ControllerRegistry } from "../src/controller-registry.js";
import { SignalLog } from "../src/signal-log.js";
import { watchVcpuSignals } from "../src/signal-stream.js";
import { OS_PAGE, esb, kvmConfig, routedXive, tima } from "./conformance-fixtures.js";
import { collectSignals, suiteHarness } from "./service-harness.js";

describe("metrics (--metrics-addr): triggers by outcome, per-RPC counts, the signal stream's backlog", () => {
  const h = suiteHarness(["--metrics-addr=127.0.0.1:0"]);
  const metrics = () => scrapeMetrics(h.running.metricsAddress!);

  it("counts each trigger under the outcome TriggerSources answered, and each RPC by method and code", async () => {
    const name = await routedXive(h, "metrics");
    const signals = collectSignals(h.client.watchVcpuSignals({ name, resumeAfter: 0n }));
    await new Promise((r) => setTimeout(r, 50)); // the stream is open before the events
    await h.call("esbAccess", esb(name, 0x1300, 0xc00)); // SET_PQ_00: sources start at PQ=01 (off)
    await h.call("timaAccess", tima(name, 0, OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, 0xffn));
    // A second source, routed but masked in its EAS, with its PQ opened too.
    await h.call("initSources", {
      name,
      sources: [{ irq: 0x1301, levelSensitive: false, asserted: false }],
      requestId: "",
    });
    await h.call("configureSources", {
      name,
      sources: [{ irq: 0x1301, kvmConfig: kvmConfig(0, 6, 0x1301, true) }],
      requestId: "",
    });
    await h.call("esbAccess", esb(name, 0x1301, 0xc00));

    const answers = [
      await h.call("triggerSources", { name, irqs: [0x1300] }), // delivered: PQ 00 -> 10
      await h.call("triggerSources", { name, irqs: [0x1300] }), // coalesced: PQ 10 -> 11
      await h.call("triggerSources", { name, irqs: [0x1301, 0x1400] }), // masked; no such source
    ];
    assert.deepEqual(answers, [
      { delivered: 1, coalesced: 0, masked: 0, dropped: 0 },
      { delivered: 0, coalesced: 1, masked: 0, dropped: 0 },
      { delivered: 0, coalesced: 0, masked: 1, dropped: 1 },
    ]);
    await assert.rejects(h.call("triggerSources", { name: "vms/none/controller", irqs: [0x1300] }));
    await signals.next(1);

    const text = await metrics();
    for (const outcome of ["delivered", "coalesced", "masked", "dropped"])
      assert.equal(sampleValue(text, "vplane_interrupt_triggers_total", { outcome }), 1, outcome);
    const trigger = {
      grpc_service: "vplane.interrupt.v1.InterruptControllerService",
      grpc_method: "TriggerSources",
    };
    assert.equal(sampleValue(text, "grpc_server_handled_total", { ...trigger, grpc_code: "OK" }), 3);
    assert.equal(sampleValue(text, "grpc_server_handled_total", { ...trigger, grpc_code: "NOT_FOUND" }), 1);
    assert.equal(sampleValue(text, "grpc_server_handling_seconds_count", trigger), 4);
    // One exception-line change sent, with nothing else waiting behind it.
    assert.equal(sampleValue(text, "vplane_interrupt_signal_stream_lag_events_count"), 1);
    assert.equal(sampleValue(text, "vplane_interrupt_signal_stream_lag_events_bucket", { le: "0" }), 1);
    assert.equal(sampleValue(text, "vplane_interrupt_signal_stream_lost_events_total"), 0);
    signals.cancel();
  });

  it("counts the triggers of EsbAccess trigger stores and SetLsiLevel asserts in the same counter as TriggerSources", async () => {
    const name = await routedXive(h, "metrics-paths");
    await h.call("initSources", {
      name,
      sources: [{ irq: 0x1302, levelSensitive: true, asserted: false }],
      requestId: "",
    });
    await h.call("configureSources", {
      name,
      sources: [{ irq: 0x1302, kvmConfig: kvmConfig(0, 6, 0x1302) }],
      requestId: "",
    });
    for (const irq of [0x1300, 0x1302]) await h.call("esbAccess", esb(name, irq, 0xc00)); // SET_PQ_00
    const before = await metrics();

    const triggerStore = {
      ...esb(name, 0x1300, 0, AccessKind.ACCESS_KIND_STORE),
      page: EsbPage.ESB_PAGE_TRIGGER,
    };
    await h.call("esbAccess", triggerStore); // delivered: PQ 00 -> 10
    await h.call("esbAccess", triggerStore); // coalesced: PQ 10 -> 11
    await h.call("esbAccess", esb(name, 0x1300, 0xc00, AccessKind.ACCESS_KIND_STORE)); // SET_PQ store: no trigger
    await h.call("setLsiLevel", { name, irq: 0x1302, asserted: true }); // delivered: PQ 00 -> 10
    await h.call("setLsiLevel", { name, irq: 0x1302, asserted: false }); // lowers the line: no trigger
    await h.call("setLsiLevel", { name, irq: 0x1302, asserted: true }); // coalesced: PQ stays 10

    const after = await metrics();
    const added = (outcome: string) =>
      sampleValue(after, "vplane_interrupt_triggers_total", { outcome }) -
      sampleValue(before, "vplane_interrupt_triggers_total", { outcome });
    assert.deepEqual(
      Object.fromEntries(["delivered", "coalesced", "masked", "dropped"].map((o) => [o, added(o)])),
      { delivered: 2, coalesced: 2, masked: 0, dropped: 0 },
    );
  });
});

describe("signal stream metrics", () => {
  it("counts the events a lost marker gives up, and each watcher's backlog after every send", async () => {
    const log = new SignalLog(4);
    for (let i = 0; i < 10; i++) log.record(0, i % 2 === 0); // sequences 1..10; 7..10 still held
    const entry = { backend: {}, watchers: 0, signals: log };
    const registry = { require: () => entry } as unknown as ControllerRegistry;
    const metrics = new ServiceMetrics();
    const abort = new AbortController();
    const sent: bigint[] = [];
    await watchVcpuSignals(registry, new EventStreamMetrics(metrics, "test_stream", "test"))(
      { name: "vms/a/controller", resumeAfter: 1n },
      (message) => {
        sent.push(message.dropped > 0n ? -message.dropped : message.sequence);
        if (message.sequence === 10n) abort.abort();
        return Promise.resolve();
      },
      { signal: abort.signal } as CallContext,
    );
    assert.deepEqual(sent, [-5n, 7n, 8n, 9n, 10n], "2..6 lost, then 7..10");
    const text = await metrics.exposition();
    assert.equal(sampleValue(text, "test_stream_lost_events_total"), 5);
    assert.equal(sampleValue(text, "test_stream_lag_events_sum"), 3 + 2 + 1 + 0);
    assert.equal(sampleValue(text, "test_stream_lag_events_count"), 4);
  });
});
