// The registry stops answering while an operation runs: an etcd member killed, the cluster
// electing a new leader, a call a follower had forwarded to the dead leader waiting out its
// deadline (etcd's 5 s). A running operation outlasts such an outage at any of its registry writes
// and ends as it would have without it: exactly once on its host, the usage exact, nothing left
// over. (Issue 16's benchmark: in the fleet's member kill, creates ended FAILED UNAVAILABLE
// REGISTRY_UNAVAILABLE, which no retry of the client completes.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { VplaneError } from "@vplane/service-kit";
import { openStore, StoreUnavailableError, type Store, type TransactionOp } from "@vplane/store";
import { startGatewayWithHost, type OperationJson } from "./support/test-gateway.js";

/** An outage as long as an election with a stalled call's deadline: ~5 s. */
const OUTAGE_MS = 5_000;

/**
 * A store that, once armed with `from`, fails every call as unavailable, without applying it, for
 * OUTAGE_MS from the `from`-th write after the next operation's start (the transaction that
 * records a new operation: a create's insert, a delete's start). Only writes count: the
 * operation's own (its record, its commit, the VM's removal), made one at a time. Armed with
 * `recordsOnly`, the outage fails only the writes of operation records.
 */
function failingStore(store: Store) {
  let from: number | undefined;
  let recordsOnly = false;
  let writes: number | undefined;
  let until = 0;
  let outages = 0;
  const down = (write: boolean, args: unknown[]) => {
    if (write && writes !== undefined && ++writes === from) {
      until = performance.now() + OUTAGE_MS;
      outages++;
    }
    // A transaction is an operation record's write when all it writes is the record (and its
    // running-operations entry), not when it commits more with it.
    const keys = Array.isArray(args[0])
      ? (args[0] as TransactionOp[]).map((op) => op.key)
      : [String(args[0])];
    const hit = !recordsOnly || (write && keys.every((key) => /^(running-)?operations\//.test(key)));
    return hit && performance.now() < until;
  };
  const starts = (ops: TransactionOp[]) =>
    ops.some((op) => op.op === "put" && op.key.startsWith("operations/") && op.ifRevision === "absent");
  const wrapped = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      const write = property === "put" || property === "delete" || property === "transaction";
      return async (...args: unknown[]) => {
        if (down(write, args)) throw new StoreUnavailableError("etcd unavailable: no leader (injected)");
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (from !== undefined && property === "transaction" && starts(args[0] as TransactionOp[]))
          writes = 0;
        return result;
      };
    },
  });
  return {
    store: wrapped,
    arm: (write: number, only: "operation records" | "all" = "all") => {
      from = write;
      recordsOnly = only === "operation records";
    },
    outages: () => outages,
  };
}

/** A gateway with one fake host over a failingStore. */
async function gatewayWithOutages(registryOutageMs?: number) {
  const inner = openStore("sqlite::memory:");
  const { store, arm, outages } = failingStore(inner);
  const started = await startGatewayWithHost({ store, ...(registryOutageMs ? { registryOutageMs } : {}) });
  return {
    ...started,
    arm,
    outages,
    close: async () => {
      await started.close();
      await inner.close();
    },
  };
}

/** One SMMU with one device: the create writes its record before CreateSmmu and AttachDevice, then commits. */
const spec = (name: string) => ({
  name,
  vcpus: 2,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive" },
  iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: 7, virtualSid: 1 }] }] },
});

type Gateway = Awaited<ReturnType<typeof gatewayWithOutages>>;

async function run(gw: Gateway["gw"], method: "POST" | "DELETE", url: string, body?: unknown) {
  const started = await gw.call("operator", method, url, body);
  assert.equal(started.statusCode, 202, started.body);
  return gw.waitForOperation("operator", started.json<OperationJson>().name, 60_000);
}

/** What the host holds for VM `uid`, and what the registry counts on it. */
async function held({ gw, host }: Gateway, uid: string) {
  return {
    controllers: [...host.controllers.values()].filter((c) => c.vm === uid).length,
    smmus: [...host.smmus.values()].filter((s) => s.vm === uid).length,
    usage: (await gw.services.hosts.usageOf("h1")).value,
  };
}

describe("a registry outage of an election's length while an operation runs", { concurrency: true }, () => {
  // A create's writes after its insert: 1 its record before CreateSmmu, 2 before AttachDevice,
  // 3 the commit (the VM READY, the operation SUCCEEDED).
  for (const from of [1, 2, 3]) {
    it(`a create outlasts it from its write ${from}: SUCCEEDED, its devices once on the host, the usage exact`, async () => {
      const fixture = await gatewayWithOutages();
      fixture.arm(from);
      try {
        const done = await run(fixture.gw, "POST", "/v1/vms", spec(`outage-${from}`));
        assert.equal(fixture.outages(), 1, "the outage was injected");
        assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
        const vm = (await fixture.gw.services.vms.require("acme", `outage-${from}`)).value;
        assert.equal(vm.state, "READY");
        assert.equal(vm.activeOperation, undefined);
        assert.deepEqual(await held(fixture, vm.uid), {
          controllers: 1,
          smmus: 1,
          usage: { vcpus: 2, memoryBytes: 1 << 20, vms: 1, smmus: 1 },
        });
      } finally {
        await fixture.close();
      }
    });
  }

  // A create the host refuses (AttachDevice) rolls back, then removes its VM (write 3): the
  // operation ends FAILED with the host's refusal, not the registry's outage; nothing is left.
  it("a failed create outlasts it at its VM's removal: FAILED as the host said, VM and usage gone", async () => {
    const fixture = await gatewayWithOutages();
    fixture.arm(3);
    fixture.host.failures.set("AttachDevice", {
      error: new VplaneError({ code: "FAILED_PRECONDITION", reason: "STREAM_ID_IN_USE", message: "in use" }),
    });
    try {
      const done = await run(fixture.gw, "POST", "/v1/vms", spec("outage-refused"));
      assert.equal(fixture.outages(), 1, "the outage was injected");
      assert.equal(done.metadata.state, "FAILED");
      assert.equal(done.error?.reason, "STREAM_ID_IN_USE", JSON.stringify(done.error));
      assert.equal(await fixture.gw.services.vms.get("acme", "outage-refused"), undefined);
      assert.equal(fixture.host.controllers.size + fixture.host.smmus.size, 0);
      assert.deepEqual((await fixture.gw.services.hosts.usageOf("h1")).value, {
        vcpus: 0,
        memoryBytes: 0,
        vms: 0,
        smmus: 0,
      });
    } finally {
      await fixture.close();
    }
  });

  // A delete's writes after its start: 1 its record before the first device goes, 2 the VM's
  // removal with its usage.
  for (const from of [1, 2]) {
    it(`a delete outlasts it from its write ${from}: SUCCEEDED, nothing left on the host or in the registry`, async () => {
      const fixture = await gatewayWithOutages();
      try {
        const name = `outage-delete-${from}`;
        const created = await fixture.gw.createVm("operator", spec(name));
        const uid = (created.response as { uid: string }).uid;
        fixture.arm(from);
        const done = await run(fixture.gw, "DELETE", `/v1/vms/${name}`);
        assert.equal(fixture.outages(), 1, "the outage was injected");
        assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
        assert.equal(await fixture.gw.services.vms.get("acme", name), undefined);
        assert.deepEqual(await held(fixture, uid), {
          controllers: 0,
          smmus: 0,
          usage: { vcpus: 0, memoryBytes: 0, vms: 0, smmus: 0 },
        });
      } finally {
        await fixture.close();
      }
    });
  }

  it("a step's record write left unanswered past the runner's limit fails the create UNAVAILABLE REGISTRY_UNAVAILABLE (retryable), not INTERNAL; rolled back", async () => {
    // The limit is bounded: the registry's outage outlasts it (1 s here).
    const fixture = await gatewayWithOutages(1_000);
    fixture.arm(1, "operation records");
    try {
      const done = await run(fixture.gw, "POST", "/v1/vms", spec("outage-long"));
      assert.equal(fixture.outages(), 1, "the outage was injected");
      assert.equal(done.metadata.state, "FAILED");
      assert.deepEqual([done.error?.code, done.error?.reason], ["UNAVAILABLE", "REGISTRY_UNAVAILABLE"]);
      const state = (name: string) => done.metadata.steps.find((s) => s.name === name)?.state;
      assert.equal(
        state("interrupt-controller.DeleteController"),
        "ROLLED_BACK",
        JSON.stringify(done.metadata.steps),
      );
      assert.equal(state("iommu.CreateSmmu(s0)"), "FAILED", "the SMMU was not created");
      assert.equal(await fixture.gw.services.vms.get("acme", "outage-long"), undefined);
      assert.equal(fixture.host.controllers.size + fixture.host.smmus.size, 0);
    } finally {
      await fixture.close();
    }
  });
});
