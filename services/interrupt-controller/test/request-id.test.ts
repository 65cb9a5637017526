// The request_id rule (issue 11 point 2, DESIGN: every mutating call is idempotent under its
// request_id): a retry gets the first answer, never a second effect; the same id with another
// method or another message is refused; the answer of a durable call survives a restart.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kvmConfig, routedXive } from "./conformance-fixtures.js";
import { failure, removeDir, startHarness, tempDataDir } from "./service-harness.js";

describe("request_id through gRPC (RequestLedger)", () => {
  it("the same request_id with another message is INVALID_ARGUMENT REQUEST_ID_REUSED, and changes nothing", async () => {
    const h = await startHarness();
    try {
      const name = await routedXive(h, "reuse");
      await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "r-1" });
      const other = await failure(h.call("connectVcpu", { name, vcpuId: 2, server: 2, requestId: "r-1" }));
      assert.deepEqual(
        [other.code, other.reason, other.field],
        ["INVALID_ARGUMENT", "REQUEST_ID_REUSED", "request_id"],
      );
      const { controller } = await h.call("getController", { name });
      assert.deepEqual(controller?.connectedServers, [0, 1]);
      const otherMethod = await failure(h.call("resetController", { name, requestId: "r-1" }));
      assert.equal(otherMethod.reason, "REQUEST_ID_REUSED");
    } finally {
      await h.stop();
      removeDir(h.dataDir);
    }
  });

  it("a durable call's answer survives a restart: its retry answers as the first time did", async () => {
    const dataDir = tempDataDir();
    let h = await startHarness(dataDir);
    try {
      const name = await routedXive(h, "durable");
      const connected = await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "c-1" });
      const configure = {
        name,
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(1, 6, 0x99) }],
        requestId: "s-1",
      };
      const configured = await h.call("configureSources", configure);
      await h.stop();

      h = await startHarness(dataDir);
      assert.deepEqual(
        await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "c-1" }),
        connected,
      );
      assert.deepEqual(await h.call("configureSources", configure), configured);
      const reused = await failure(h.call("connectVcpu", { name, vcpuId: 2, server: 2, requestId: "s-1" }));
      assert.equal(reused.reason, "REQUEST_ID_REUSED");
      // Deleting the controller forgets its answers: the id serves a new controller afresh.
      await h.call("deleteController", { name, requestId: "" });
      const again = await routedXive(h, "durable");
      await h.call("connectVcpu", { name: again, vcpuId: 2, server: 2, requestId: "c-1" });
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });
});
