// Placement among equally good hosts and what it reads. Concurrent creates (several clients,
// several replicas) each swap against the usage of the host they picked: when all pick the same
// single best host, all but one lose and place again, each loss a read and a write more (on etcd
// a fleet create cost 2.75 placements at 12 clients). So hosts whose free share is within 5% of
// the best are equally good and one of them is taken at random; and a placement reads the hosts,
// their leases and their usages in one read, however many hosts there are.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openStore, type Store } from "@vplane/store";
import { HostRegistry } from "../src/registry/host-registry.js";
import { HostLeases } from "../src/hosts/host-leases.js";
import { HostStates } from "../src/hosts/host-states.js";
import type { HostHealthMonitor } from "../src/hosts/host-health.js";
import { chooseHost, type PlacementCandidate } from "../src/vms/placement.js";

const GIB = 2 ** 30;
const ADDRESSES = { interruptController: "127.0.0.1:1", iommu: "127.0.0.1:2", migration: "127.0.0.1:3" };

const candidate = (name: string, vcpusUsed: number, vcpus = 100): PlacementCandidate => ({
  host: { name, addresses: ADDRESSES, capacity: { vcpus, memoryBytes: 0 }, source: "api", createTime: "" },
  usage: { vcpus: vcpusUsed, memoryBytes: 0, vms: vcpusUsed },
});

const demand = { vcpus: 1, memoryBytes: GIB };

describe("placement among equally good hosts", () => {
  it("takes one of the hosts within 5% of the most room at random, never one with clearly less", () => {
    // Free share after placement: a 0.89, b 0.86 (within 5% of a), c 0.80 (not), d full.
    const hosts = [candidate("a", 10), candidate("b", 13), candidate("c", 19), candidate("d", 100)];
    const picks = new Set(
      [0, 0.49, 0.5, 0.99].map((r) => chooseHost(hosts, demand, undefined, () => r).host.name),
    );
    assert.deepEqual([...picks].sort(), ["a", "b"]);
  });

  it("spreads concurrent placements over equal hosts instead of sending all to one", () => {
    const hosts = ["h1", "h2", "h3", "h4"].map((name) => candidate(name, 0));
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const { host } = chooseHost(hosts, demand);
      counts.set(host.name, (counts.get(host.name) ?? 0) + 1);
    }
    assert.equal(counts.size, 4, JSON.stringify([...counts]));
    for (const [name, n] of counts) assert.ok(n > 50, `${name} got ${n} of 400`);
  });

  it("still takes the host with the most room when the others are clearly fuller", () => {
    const hosts = [candidate("small", 0, 4), candidate("large", 0, 16)];
    for (const r of [0, 0.5, 0.99])
      assert.equal(chooseHost(hosts, { vcpus: 4, memoryBytes: 0 }, undefined, () => r).host.name, "large");
  });
});

/** A store that counts its reads (get, list). */
function countingReads(store: Store, count: { reads: number }): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (property === "get" || property === "list") count.reads++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe("what a placement reads", () => {
  it("reads hosts, leases and usages in one read for 6 hosts, each usage with its revision and lease", async () => {
    const store = openStore("sqlite::memory:");
    const count = { reads: 0 };
    const counted = countingReads(store, count);
    const hosts = new HostRegistry(counted);
    for (let i = 1; i <= 6; i++)
      await hosts.register(
        { name: `h${i}`, addresses: ADDRESSES, capacity: { vcpus: 8, memoryBytes: 0 } },
        "api",
      );
    const health = {
      of: () =>
        Promise.resolve({
          services: { interruptController: "SERVING", iommu: "SERVING", migration: "SERVING" },
          checkedAtMs: Date.now(),
        }),
    } as unknown as HostHealthMonitor;
    const leases = new HostLeases(counted);
    const renewal = leases.renewal("h2", 60_000, "test");
    await store.transaction([renewal.op]);
    const states = new HostStates(counted, hosts, leases, health);
    count.reads = 0;
    const all = await states.all();
    assert.equal(count.reads, 1);
    assert.equal(all.length, 6);
    for (const state of all) {
      const usage = await hosts.usageOf(state.host.name);
      assert.deepEqual(state.usage, usage, state.host.name);
      assert.ok(usage.revision > 0);
      assert.deepEqual(state.lease, state.host.name === "h2" ? renewal.lease : undefined);
    }
    await store.close();
  });
});
