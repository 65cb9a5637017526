// EtcdStore against a real etcd started by the test on loopback (see src/testing/etcd-server.ts).
// Without etcd on PATH the suite is skipped loudly, unless CI=true, where that is a failure.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  EtcdStore,
  etcdTestsSkipReason,
  openStore,
  startEtcdForTests,
  StoreUnavailableError,
  type EtcdTestServer,
} from "../src/index.js";
import { describeStoreContract } from "./store-contract.js";

const skip = etcdTestsSkipReason();

describe("EtcdStore on a real etcd", { skip }, () => {
  let etcd: EtcdTestServer;
  let prefixes = 0;
  before(async () => {
    etcd = await startEtcdForTests();
  });
  after(async () => {
    await etcd.stop();
  });

  describeStoreContract("EtcdStore", {
    // Each test gets its own key prefix in the one etcd: that is also what keeps deployments apart.
    freshStorage: () => {
      const prefix = `contract-${++prefixes}/`;
      return Promise.resolve(() => new EtcdStore({ endpoints: [etcd.endpoint], prefix }));
    },
  });

  it("keeps deployments under different prefixes apart", async () => {
    const prod = openStore(etcd.storeUrl("prod"));
    const staging = openStore(etcd.storeUrl("staging/"));
    try {
      await prod.put("vms/a/vm-1", "prod");
      await staging.put("vms/a/vm-1", "staging", { ifRevision: "absent" });
      assert.equal((await prod.get("vms/a/vm-1"))?.value, "prod");
      assert.deepEqual(
        (await staging.list("")).entries.map((entry) => [entry.key, entry.value]),
        [["vms/a/vm-1", "staging"]],
      );
    } finally {
      await Promise.all([prod.close(), staging.close()]);
    }
  });

  it("stores JSON as plain text in etcd, readable by other etcd tools", async () => {
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: "plain/" });
    const raw = new EtcdStore({ endpoints: [etcd.endpoint], prefix: "" });
    try {
      await store.put("k", { a: 1 });
      const entry = await raw.get("plain/k");
      assert.deepEqual(entry?.value, { a: 1 });
    } finally {
      await Promise.all([store.close(), raw.close()]);
    }
  });
});

describe("EtcdStore when etcd is gone", { skip }, () => {
  it("fails with StoreUnavailableError, within the call timeout", async () => {
    const etcd = await startEtcdForTests();
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: "gone/", callTimeoutMs: 1000 });
    try {
      await store.put("k", 1);
      await etcd.stop();
      const started = Date.now();
      await assert.rejects(store.get("k"), StoreUnavailableError);
      await assert.rejects(store.put("k", 2, { ifRevision: "absent" }), StoreUnavailableError);
      assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
    } finally {
      await store.close();
      await etcd.stop();
    }
  });
});
