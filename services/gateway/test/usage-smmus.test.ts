// A host usage written before SMMUs were counted (no `smmus`, as a gateway of that version wrote
// it, and still writes it in a rolling upgrade) must not read as 0 SMMUs: placement would put more
// SMMUs on the host than its iommu takes, and a removal would count its VM's off from 0.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { registryKeys } from "../src/registry/registry-keys.js";
import { startGatewayWithHost, type OperationJson } from "./support/test-gateway.js";

const withSmmus = (name: string, smmus: number) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
  iommu: { smmus: Array.from({ length: smmus }, (_, i) => ({ name: `s${i}` })) },
});

describe("a host usage without an SMMU count (written before SMMUs were counted)", () => {
  it("reads with the SMMUs of the VMs placed on the host: shown, placed against, and given back exactly", async () => {
    const { gw, close } = await startGatewayWithHost();
    try {
      const host = await gw.services.hosts.require("h1");
      await gw.services.store.put(registryKeys.host("h1"), {
        ...host,
        capacity: { vcpus: 0, memoryBytes: 0, smmus: 2 },
      });
      await gw.createVm("operator", withSmmus("vm-1", 2));
      // An older gateway's write of the usage: the same counts, without `smmus`.
      const key = registryKeys.hostUsage("h1");
      const { smmus: _uncounted, ...legacy } = (await gw.services.store.get(key))!.value as Record<
        string,
        number
      >;
      await gw.services.store.put(key, legacy);

      const usage = async () =>
        (await gw.call("admin", "GET", "/v1/hosts/h1")).json<{ usage: { vms: number; smmus: number } }>()
          .usage;
      assert.deepEqual(await usage(), { vcpus: 1, memoryBytes: 1 << 20, vms: 1, smmus: 2 });
      const refused = await gw.call("operator", "POST", "/v1/vms", withSmmus("vm-2", 1));
      assert.equal(refused.statusCode, 429, refused.body);
      assert.equal(refused.json<{ error: { reason: string } }>().error.reason, "NO_HOST_WITH_CAPACITY");

      const deleted = await gw.call("operator", "DELETE", "/v1/vms/vm-1");
      const done = await gw.waitForOperation("operator", deleted.json<OperationJson>().name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      assert.deepEqual((await gw.services.store.get(key))!.value, {
        vcpus: 0,
        memoryBytes: 0,
        vms: 0,
        smmus: 0,
      });
      await gw.createVm("operator", withSmmus("vm-2", 2));
      assert.deepEqual(await usage(), { vcpus: 1, memoryBytes: 1 << 20, vms: 1, smmus: 2 });
    } finally {
      await close();
    }
  });
});
