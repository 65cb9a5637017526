// What a create reads and swaps on a replica's view of the hosts (vms/placement-view.ts). On etcd
// each read is a round trip and each lost swap of a host's usage a quorum write that applied
// nothing, per create: so a replica reads the hosts at most every VIEW_MS, swaps against the usage
// its own last create on that host wrote, and keeps off a host another replica writes. The swap's
// compare still guards every write: the usage stays exact however stale the view.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openStore, type Store, type TransactionOp } from "@vplane/store";
import type { Principal } from "../src/access/access-tokens.js";
import { registryKeys } from "../src/registry/registry-keys.js";
import { LOST_MS, VIEW_MS } from "../src/vms/placement-view.js";
import { VmLifecycle } from "../src/vms/vm-lifecycle.js";
import { FakeHost } from "./support/fake-host.js";
import { observedStore } from "./support/observed-store.js";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

const PRINCIPAL: Principal = { tokenId: "t", tenant: "acme", role: "operator" };

const spec = (name: string, host?: string) => ({
  name,
  vcpus: 2,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" as const },
  ...(host ? { placement: { host } } : {}),
});

/** Store calls that touch the hosts' records, usages or leases: reads, and swaps of a usage. */
interface HostCalls {
  reads: number;
  usageSwaps: number;
}

describe("placement on a replica's view of the hosts", () => {
  let store: Store;
  let host: FakeHost;
  let gw: TestGateway;
  const calls: HostCalls = { reads: 0, usageSwaps: 0 };
  let clock = 1_000_000;
  /** A replica: its own lifecycle (its own view) over the gateway's registry and runner. */
  const replica = (instanceId: string) => new VmLifecycle({ ...gw.services, instanceId }, () => clock);

  before(async () => {
    store = openStore("sqlite::memory:");
    const observed = observedStore(store, (method, args) => {
      if ((method === "get" || method === "list") && String(args[0]).startsWith("host")) calls.reads++;
      if (
        method === "transaction" &&
        (args[0] as TransactionOp[]).some((op) => op.key.startsWith(registryKeys.hostUsages()))
      )
        calls.usageSwaps++;
    });
    host = await FakeHost.start();
    gw = await startTestGateway({ store: observed });
    for (const name of ["h1", "h2"])
      await gw.services.hosts.register({ name, addresses: host.addresses }, "api");
  });
  after(async () => {
    await gw.close();
    await host.stop();
    await store.close();
  });

  const create = async (lifecycle: VmLifecycle, name: string, on?: string) => {
    const operation = await lifecycle.create(PRINCIPAL, spec(name, on));
    await gw.services.runner.drain();
    const vm = await gw.services.vms.require("acme", name);
    assert.equal(vm.value.state, "READY", operation.name);
    return vm.value.host;
  };
  const reset = () => Object.assign(calls, { reads: 0, usageSwaps: 0 });
  const usageIs = async (name: string, vms: number) =>
    assert.deepEqual((await gw.services.hosts.usageOf(name)).value, {
      vcpus: 2 * vms,
      memoryBytes: (1 << 20) * vms,
      vms,
      smmus: 0,
    });

  it("reads the hosts once per VIEW_MS, and a create on the host of its last one swaps against what that one wrote, unread", async () => {
    const a = replica("replica-a");
    reset();
    const first = await create(a, "view-1");
    assert.equal(calls.reads, 1, "the first placement reads hosts, usages and leases in one list");
    reset();
    assert.equal(await create(a, "view-2"), first, "the host it last wrote is its first choice");
    assert.equal(await create(a, "view-3"), first);
    assert.deepEqual(calls, { reads: 0, usageSwaps: 2 });
    await usageIs(first, 3);
    clock += VIEW_MS;
    reset();
    await create(a, "view-4");
    assert.equal(calls.reads, 1, "a view VIEW_MS old is read again");
  });

  it("a usage another replica changed meanwhile fails the swap once: the host is left for one written alone, the usage stays exact", async () => {
    const b = replica("replica-b");
    const c = replica("replica-c");
    const mine = await create(b, "race-b1");
    const other = mine === "h1" ? "h2" : "h1";
    const before = (await gw.services.hosts.usageOf(mine)).value.vms;
    await create(c, "race-c1", mine); // c writes b's host: b's known usage of it is stale now
    reset();
    assert.equal(await create(b, "race-b2"), other, "placed again, on the host it does not share");
    assert.equal(calls.usageSwaps, 2, "the stale swap lost, the next applied");
    await usageIs(mine, before + 1);
    reset();
    assert.equal(await create(b, "race-b3"), other, "and stays there");
    assert.equal(calls.reads, 0);
    clock += LOST_MS;
    // A host whose loss is LOST_MS old is as good as any other again (b's last host still first).
    assert.equal(await create(b, "race-b4"), other);
  });

  it("a replica that lost a swap on the host asked for reads the hosts once, then swaps on what it read", async () => {
    const d = replica("replica-d");
    const e = replica("replica-e");
    await create(d, "asked-d1", "h1");
    await create(e, "asked-e1", "h1"); // e writes d's host: d's known usage of it is stale now
    const vms = (await gw.services.hosts.usageOf("h1")).value.vms;
    reset();
    await create(d, "asked-d2", "h1");
    assert.deepEqual(calls, { reads: 1, usageSwaps: 2 }, "the stale swap lost, one read, the next applied");
    await usageIs("h1", vms + 1);
  });
});
