import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import pino from "pino";
import { buildGatewayServices } from "../src/gateway.js";
import { operationId } from "../src/operations/operation-records.js";
import { registryKeys } from "../src/registry/registry-keys.js";
import { toJson } from "../src/registry/typed-entry.js";
import { startGatewayWithHost, type OperationJson } from "./support/test-gateway.js";

const vmBody = { name: "vm-1", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } };

describe("operation recovery: a stopped replica's operations do not stay RUNNING for ever", () => {
  it("another replica ends them FAILED ABORTED/OPERATION_ABANDONED at their step, frees the VM as FAILED, and leaves a live replica's alone", async () => {
    // Replica A runs the create but keeps no heartbeat (as after kill -9); its host answers slowly.
    const { gw, host, close } = await startGatewayWithHost();
    host.delayMs = 400;
    const b = buildGatewayServices({
      log: pino({ level: "silent" }),
      store: gw.services.store,
      tokens: gw.tokens,
      credentials: credentials.createInsecure(),
    });
    try {
      const created = await gw.call("operator", "POST", "/v1/vms", vmBody);
      assert.equal(created.statusCode, 202, created.body);
      const name = created.json<OperationJson>().name;
      const id = name.slice("operations/".length);

      // A replica whose heartbeat is fresh keeps its unfinished operation.
      const live = structuredClone((await b.operations.get("acme", id))!.value);
      live.name = "operations/op-live";
      live.owner = "gw-live";
      await gw.services.store.put(registryKeys.operation("acme", "op-live"), toJson(live));
      await gw.services.store.put("gateways/gw-live", { instanceId: "gw-live", heartbeatAtMs: Date.now() });

      await b.recovery.start();
      const ended = await gw.call("operator", "GET", `/v1/${name}`);
      const op = ended.json<OperationJson>();
      assert.equal(op.done, true);
      assert.equal(op.metadata.state, "FAILED");
      assert.deepEqual([op.error?.code, op.error?.reason], ["ABORTED", "OPERATION_ABANDONED"]);
      assert.equal(op.error?.details.step, op.metadata.step);
      const vm = (await gw.call("operator", "GET", "/v1/vms/vm-1")).json<{
        state: string;
        activeOperation?: string;
      }>();
      assert.deepEqual([vm.state, vm.activeOperation], ["FAILED", undefined]);
      assert.equal((await b.operations.get("acme", "op-live"))!.value.done, false);

      // A lapsed heartbeat (older than the lease) counts as stopped.
      assert.deepEqual(await b.recovery.reap(Date.now() + 60_000), ["operations/op-live"]);

      // Replica A was only slow: its later writes leave the ended record as it is.
      await gw.services.runner.drain();
      const after = (await b.operations.get("acme", id))!.value;
      assert.deepEqual([after.metadata.state, after.error?.reason], ["FAILED", "OPERATION_ABANDONED"]);
      assert.match(after.error?.message ?? "", /stopped while running this operation/);
      assert.equal(operationId(after), id);
    } finally {
      await b.recovery.stop();
      await close();
    }
  });
});
