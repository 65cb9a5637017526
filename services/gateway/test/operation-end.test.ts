// An operation's end is recorded even when the registry fails that write at first: a record left
// RUNNING by a replica that is alive is taken over by no one, and its VM stays busy for ever
// (found by the fleet test, bench/test/fleet.test.ts, under a loaded etcd).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { suiteGatewayOverStore, type OperationJson } from "./support/test-gateway.js";

/** Whether a put's or a transaction's arguments write an operation's record done. */
function endsAnOperation(method: string, args: unknown[]): boolean {
  const puts =
    method === "put"
      ? [{ key: args[0] as string, value: args[1] }]
      : method === "transaction"
        ? (args[0] as TransactionOp[]).flatMap((op) => (op.op === "put" ? [op] : []))
        : [];
  return puts.some(
    ({ key, value }) => key.startsWith("operations/") && (value as { done?: boolean }).done === true,
  );
}

/** A store whose next `failures` writes of a finished operation fail as an unreachable etcd does. */
function flakyAtTheEnd(store: Store, failures: { left: number }): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (endsAnOperation(String(property), args) && failures.left > 0) {
          failures.left--;
          return Promise.reject(new StoreUnavailableError("etcd: deadline exceeded (injected)"));
        }
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
}

describe("the end of an operation", () => {
  const failures = { left: 0 };
  const suite = suiteGatewayOverStore((store) => flakyAtTheEnd(store, failures));

  it("is written again when the registry fails it (twice), so the delete ends SUCCEEDED and the VM is gone", async () => {
    // (A create's end goes with its commit, in one transaction: a delete's is a write of its own.)
    const created = await suite.gw.call("operator", "POST", "/v1/vms", {
      name: "end",
      vcpus: 1,
      memoryBytes: 1 << 20,
      interruptController: { mode: "xics" },
    });
    assert.equal(created.statusCode, 202, created.body);
    await suite.gw.waitForOperation("operator", created.json<OperationJson>().name);
    failures.left = 2;
    const deleting = await suite.gw.call("operator", "DELETE", "/v1/vms/end");
    assert.equal(deleting.statusCode, 202, deleting.body);
    const done = await suite.gw.waitForOperation("operator", deleting.json<OperationJson>().name);
    assert.equal(done.metadata.state, "SUCCEEDED");
    assert.equal(failures.left, 0, "both injected failures were met");
    assert.equal((await suite.gw.call("viewer", "GET", "/v1/vms/end")).statusCode, 404);
  });
});
