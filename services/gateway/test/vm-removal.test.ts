// VmRegistry.remove asked again after a removal that applied but whose answer was lost (an etcd
// member killed mid-call): the operation's removal is a read-modify-write by the VM's name, so the
// retry must remove only the VM it was meant for, not one created under that name in the pause.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { outlastingOutage } from "../src/operations/registry-outage.js";
import { VmRegistry } from "../src/registry/vm-registry.js";
import { startGatewayWithHost } from "./support/test-gateway.js";

const spec = (vcpus: number) => ({
  name: "vm-1",
  vcpus,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
});

/**
 * `store`, whose first transaction deleting a VM applies, then runs `meanwhile` (another replica's
 * write in the pause before the retry) and fails as unavailable: the answer lost.
 */
function losingRemovalAnswer(store: Store, meanwhile: () => Promise<void>): Store {
  let armed = true;
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== "transaction" || typeof value !== "function") return value;
      return async (ops: TransactionOp[]) => {
        const removes = ops.some((op) => op.op === "delete" && op.key.startsWith("vms/"));
        const result = (await (value as Store["transaction"]).call(target, ops)) as unknown;
        if (!armed || !removes) return result;
        armed = false;
        await meanwhile();
        throw new StoreUnavailableError("etcd unavailable: the answer was lost (injected)");
      };
    },
  });
}

describe("a VM's removal asked again after one that applied unanswered", () => {
  it("removes only the VM of the uid it was given: one created under the same name in the pause stays, and so does its usage", async () => {
    const { gw, close } = await startGatewayWithHost();
    try {
      await gw.createVm("operator", spec(2));
      const { uid } = (await gw.services.vms.require("acme", "vm-1")).value;
      // In the pause, a create of the same name through the gateway (another replica's, say).
      const recreate = async () => void (await gw.createVm("operator", spec(3)));
      const vms = new VmRegistry(losingRemovalAnswer(gw.services.store, recreate));
      await outlastingOutage(() => vms.remove("acme", "vm-1", uid), 5_000);
      const left = (await gw.services.vms.require("acme", "vm-1")).value;
      assert.deepEqual(
        [left.vcpus, left.uid !== uid],
        [3, true],
        "the VM created in the pause is still there",
      );
      const usage = (await gw.call("admin", "GET", "/v1/hosts/h1")).json<{ usage: Record<string, number> }>()
        .usage;
      assert.deepEqual([usage["vms"], usage["vcpus"]], [1, 3], "and counted on its host");
    } finally {
      await close();
    }
  });
});
