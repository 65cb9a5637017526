// WatchVcpuSignals on a backend that cannot report exception lines (the native one): UNIMPLEMENTED
// with the backend's reason, before any stream is held open.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventStreamMetrics, ServiceMetrics, VplaneError, type CallContext } from "@vplane/service-kit";
import type { ControllerRegistry } from "../src/controller-registry.js";
import { watchVcpuSignals } from "../src/signal-stream.js";

describe("WatchVcpuSignals where the backend has no signals to give", () => {
  it("answers UNIMPLEMENTED with the backend's reason (NATIVE_SIGNALS_IN_KVM_RUN for the KVM XIVE device)", async () => {
    const entry = {
      backend: {
        signalsUnavailable: { reason: "NATIVE_SIGNALS_IN_KVM_RUN", message: "raised inside KVM_RUN" },
      },
      watchers: 0,
    };
    const registry = { require: () => entry } as unknown as ControllerRegistry;
    const context = { signal: new AbortController().signal } as CallContext;
    await assert.rejects(
      watchVcpuSignals(registry, new EventStreamMetrics(new ServiceMetrics(), "test_stream", "test"))(
        { name: "vms/a/controller", resumeAfter: 0n },
        () => Promise.resolve(),
        context,
      ),
      (e: unknown) =>
        e instanceof VplaneError && e.code === "UNIMPLEMENTED" && e.reason === "NATIVE_SIGNALS_IN_KVM_RUN",
    );
    assert.equal(entry.watchers, 0, "no stream was counted");
  });
});
