import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { VplaneError } from "@vplane/service-kit";
import { openStore, type Store } from "@vplane/store";
import pino from "pino";
import { buildGatewayServices } from "../src/gateway.js";
import { operationId, OperationRecords } from "../src/operations/operation-records.js";
import { newOperationRecord } from "../src/operations/operation-runner.js";
import { registryKeys } from "../src/registry/registry-keys.js";
import { toJson } from "../src/registry/typed-entry.js";
import { observedStore } from "./support/observed-store.js";
import type { TestGateway } from "./support/test-gateway.js";
import { stopInCall, untilStopped } from "./support/stopped-in-call.js";
import { startGatewayWithHost, startTestGateway, type OperationJson } from "./support/test-gateway.js";

const vmBody = { name: "vm-1", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } };

/**
 * Another gateway replica on `gw`'s registry (its recovery not started: the test drives it), seen
 * through `store` when given.
 */
const replicaOf = (gw: TestGateway, store = gw.services.store) =>
  buildGatewayServices({
    log: pino({ level: "silent" }),
    store,
    tokens: gw.tokens,
    credentials: credentials.createInsecure(),
  });

describe("operation recovery: a stopped replica's operations do not stay RUNNING for ever", () => {
  it("another replica ends them FAILED ABORTED/OPERATION_ABANDONED at their step, and leaves a live replica's alone", async () => {
    // Replica A runs the create but keeps no heartbeat (as after kill -9); its host answers slowly.
    const { gw, host, close } = await startGatewayWithHost();
    host.delayMs = 400;
    const b = replicaOf(gw);
    try {
      const created = await gw.call("operator", "POST", "/v1/vms", vmBody);
      assert.equal(created.statusCode, 202, created.body);
      const name = created.json<OperationJson>().name;
      const id = name.slice("operations/".length);

      // A replica whose heartbeat is fresh keeps its unfinished operation.
      const live = structuredClone((await b.operations.get("acme", id))!.value);
      live.name = "operations/op-live";
      live.owner = "gw-live";
      await gw.services.store.transaction(b.operations.create(live)); // as its start writes it
      await gw.services.store.put("gateways/gw-live", { instanceId: "gw-live", heartbeatAtMs: Date.now() });

      await b.recovery.start();
      await b.runner.drain();
      const op = (await gw.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.equal(op.done, true);
      assert.equal(op.metadata.state, "FAILED");
      assert.deepEqual([op.error?.code, op.error?.reason], ["ABORTED", "OPERATION_ABANDONED"]);
      // The step the stopped replica's record was at (its steps are written in batches, so the
      // record may lag what it did; the rollback's steps follow it in metadata.step).
      const atStep = op.error?.details.step;
      assert.ok(typeof atStep === "string" && atStep.length > 0, JSON.stringify(op.error));
      assert.ok(op.error?.message.includes(`at step "${atStep}"`), JSON.stringify(op.error));
      assert.equal((await b.operations.get("acme", "op-live"))!.value.done, false);

      // A lapsed heartbeat (older than the lease) counts as stopped.
      assert.deepEqual(await b.recovery.reap(Date.now() + 60_000), ["operations/op-live"]);
      // Its VM is not busy with it (vm-1 names A's create): no claim that the VM is FAILED.
      assert.match(
        (await b.operations.get("acme", "op-live"))!.value.error?.message ?? "",
        /VM 'vm-1' is not busy with it \(settled by it, or gone\) and is left as it is$/,
      );

      // Replica A was only slow: its later writes leave the ended record as it is, and what it
      // created after the rollback it deletes itself when it finds the operation taken over.
      await gw.services.runner.drain();
      const after = (await b.operations.get("acme", id))!.value;
      assert.deepEqual([after.metadata.state, after.error?.reason], ["FAILED", "OPERATION_ABANDONED"]);
      assert.match(after.error?.message ?? "", /stopped while running this operation/);
      assert.equal(operationId(after), id);
      assert.deepEqual([host.controllers.size, host.smmus.size], [0, 0], "nothing left on the host");
    } finally {
      await b.recovery.stop();
      await close();
    }
  });
});

describe("operation recovery rolls an abandoned create back on the host (issue 17 point 8)", () => {
  it("a replica stopped mid-create: the recovering replica deletes the SMMUs and the controller in reverse, idempotently; the VM and its usage go as after any rolled-back create", async () => {
    const { gw, host, close } = await startGatewayWithHost();
    const b = replicaOf(gw);
    const c = replicaOf(gw);
    try {
      // Replica A (no heartbeat, as after kill -9) gets as far as the controller and SMMU s0 and
      // then hangs attaching s0's device: s1 is never created.
      host.failures.set("AttachDevice", {
        error: new VplaneError({ code: "INTERNAL", reason: "UNUSED", message: "never thrown" }),
        when: () => false,
        delayMs: 3000,
      });
      const created = await gw.call("operator", "POST", "/v1/vms", {
        ...vmBody,
        iommu: {
          smmus: [
            { name: "s0", devices: [{ physicalSid: 16, virtualSid: 1 }] },
            { name: "s1", devices: [{ physicalSid: 17, virtualSid: 1 }] },
          ],
        },
      });
      assert.equal(created.statusCode, 202, created.body);
      const name = created.json<OperationJson>().name;
      const until = performance.now() + 10_000;
      while (!host.calls.some((call) => call.startsWith("AttachDevice"))) {
        assert.ok(performance.now() < until, "the create never reached AttachDevice");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const uid = (await gw.call("operator", "GET", "/v1/vms/vm-1")).json<{ uid: string }>().uid;
      assert.deepEqual(
        [[...host.controllers.keys()], [...host.smmus.keys()]],
        [[`vms/${uid}/controller`], [`vms/${uid}/smmus/s0`]],
        "A's create left these on the host",
      );

      // Two replicas look at once: one takes the create over, the other leaves it.
      const handled = await Promise.all([b.recovery.reap(), c.recovery.reap()]);
      assert.deepEqual(handled.flat(), [name]);
      await Promise.all([b.runner.drain(), c.runner.drain()]);
      assert.deepEqual([host.controllers.size, host.smmus.size], [0, 0], "the devices are deleted");
      const deletes = host.calls.filter((call) => call.startsWith("Delete"));
      assert.deepEqual(
        deletes,
        [
          `DeleteSmmu vms/${uid}/smmus/s1`,
          `DeleteSmmu vms/${uid}/smmus/s0`,
          `DeleteController vms/${uid}/controller`,
        ],
        "in reverse order of creation; s1 was never made (NOT_FOUND counts as done)",
      );
      const op = (await gw.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.deepEqual(
        [op.metadata.state, op.error?.code, op.error?.reason],
        ["FAILED", "ABORTED", "OPERATION_ABANDONED"],
      );
      assert.equal(op.error?.details.step, "iommu.AttachDevice(s0: 16->1)");
      assert.match(
        op.error.message,
        /rolled back: iommu\.DeleteSmmu\(s1\), iommu\.DeleteSmmu\(s0\), interrupt-controller\.DeleteController/,
      );
      assert.deepEqual(
        op.metadata.steps.filter((s) => s.name.includes("Delete")).map((s) => s.state),
        ["ROLLED_BACK", "ROLLED_BACK", "ROLLED_BACK"],
      );
      assert.equal(
        (await gw.call("operator", "GET", "/v1/vms/vm-1")).statusCode,
        404,
        "all or nothing: no VM",
      );
      const usage = (await gw.call("admin", "GET", "/v1/hosts/h1")).json<{
        usage: { vms: number; vcpus: number };
      }>().usage;
      assert.deepEqual([usage.vms, usage.vcpus], [0, 0], "the host's capacity is given back");

      // Replica A wakes up: it finds its operation taken over and stops, touching nothing it did not make.
      await gw.services.runner.drain();
      assert.deepEqual([host.controllers.size, host.smmus.size], [0, 0]);
      const after = (await gw.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.deepEqual(after, op, "the recovered record stays as the recovering replica wrote it");
      // The name is free again.
      host.failures.clear();
      const again = await gw.call("operator", "POST", "/v1/vms", vmBody);
      assert.equal(again.statusCode, 202, again.body);
      await gw.waitForOperation("operator", again.json<OperationJson>().name);
    } finally {
      await close();
    }
  });
});

// Rule: a delete whose replica stopped between a device delete reaching the host and its record
// is finished by the adopter (every device delete again: NOT_FOUND counts as done), not ended
// with its VM FAILED.
describe("operation recovery finishes an abandoned delete", () => {
  it("a replica stopped inside DeleteSmmu (applied on the host, its answer never recorded): the recovering replica deletes the rest and the VM; SUCCEEDED, usage given back", async () => {
    const { gw, host, close } = await startGatewayWithHost();
    const b = replicaOf(gw);
    const stopped = stopInCall(gw.services.connections, "DeleteSmmu", true);
    try {
      await gw.createVm("operator", {
        ...vmBody,
        iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: 16, virtualSid: 1 }] }] },
      });
      const uid = (await gw.call("operator", "GET", "/v1/vms/vm-1")).json<{ uid: string }>().uid;
      const deleting = await gw.call("operator", "DELETE", "/v1/vms/vm-1");
      assert.equal(deleting.statusCode, 202, deleting.body);
      const name = deleting.json<OperationJson>().name;
      await untilStopped(stopped, true);
      assert.deepEqual(
        [host.smmus.size, host.controllers.size],
        [0, 1],
        "the SMMU went; the controller not yet",
      );

      // Replica A keeps no heartbeat (as after kill -9): B takes its delete over.
      assert.deepEqual(await b.recovery.reap(), [name]);
      await b.runner.drain();
      const op = (await gw.call("operator", "GET", `/v1/${name}`)).json<OperationJson>();
      assert.equal(op.metadata.state, "SUCCEEDED", JSON.stringify(op.error));
      assert.deepEqual(
        host.calls.filter((call) => call.startsWith("Delete")),
        [
          `DeleteSmmu vms/${uid}/smmus/s0`,
          `DeleteSmmu vms/${uid}/smmus/s0`,
          `DeleteController vms/${uid}/controller`,
        ],
        "A's DeleteSmmu, B's again (NOT_FOUND: done), B's DeleteController",
      );
      assert.deepEqual([host.smmus.size, host.controllers.size], [0, 0]);
      assert.equal((await gw.call("operator", "GET", "/v1/vms/vm-1")).statusCode, 404);
      const usage = (await gw.call("admin", "GET", "/v1/hosts/h1")).json<{
        usage: { vms: number; vcpus: number; smmus: number };
      }>().usage;
      assert.deepEqual([usage.vms, usage.vcpus, usage.smmus], [0, 0, 0]);
    } finally {
      stopped.resume();
      await gw.services.runner.drain();
      await close();
    }
  });
});

describe("operation recovery ends a delete whose replica stopped after removing the VM", () => {
  it("the VM gone, only the operation's end unrecorded: SUCCEEDED as the delete's own end, not FAILED", async () => {
    const { gw, close } = await startGatewayWithHost();
    const b = replicaOf(gw);
    try {
      await gw.createVm("operator", vmBody);
      const deleting = await gw.call("operator", "DELETE", "/v1/vms/vm-1");
      const done = await gw.waitForOperation("operator", deleting.json<OperationJson>().name);
      assert.equal(done.metadata.state, "SUCCEEDED", JSON.stringify(done.error));
      // The record as the stopped replica left it: everything but the end written.
      const id = done.name.slice("operations/".length);
      await gw.services.operations.update("acme", id, (r) => {
        const { response: _unwritten, ...rest } = r;
        return { ...rest, done: false, owner: "gw-stopped", metadata: { ...r.metadata, state: "RUNNING" } };
      });
      assert.deepEqual(await b.recovery.reap(), [done.name]);
      await b.runner.drain();
      const op = (await gw.call("operator", "GET", `/v1/${done.name}`)).json<OperationJson>();
      assert.deepEqual([op.metadata.state, op.response], ["SUCCEEDED", { name: "vm-1", deleted: true }]);
    } finally {
      await close();
    }
  });
});

/**
 * Replica gw-x's delete operation `id` as its start writes it (the record and its entry in the
 * running-operations index; `indexed` false: the record alone, as a gateway from before the index
 * wrote it), with its VM marked busy with it (its host h1 is not registered: the delete is ended,
 * not adopted).
 */
const putGwxDelete = async (store: Store, id: string, indexed = true) => {
  const record = {
    ...newOperationRecord({
      kind: "delete",
      tenant: "acme",
      vm: `vm-${id}`,
      host: "h1",
      owner: "gw-x",
      steps: [],
    }),
    name: `operations/${id}`,
  };
  await store.put(registryKeys.vm("acme", `vm-${id}`), { name: `vm-${id}`, activeOperation: record.name });
  if (indexed) await store.transaction(new OperationRecords(store).create(record));
  else await store.put(registryKeys.operation("acme", id), toJson(record));
};

/** Ends gw-x's operation `id` as its runner does (the index entry goes in the same write). */
const endGwx = (store: Store, id: string) =>
  new OperationRecords(store).update("acme", id, (r) => ({ ...r, done: true }));

describe("operation recovery reads the running-operations index, not every record", () => {
  it("finds one it saw running whose replica stopped since, and one started after its last look; not one that ended", async () => {
    const gw = await startTestGateway();
    const b = replicaOf(gw);
    const store = gw.services.store;
    try {
      await putGwxDelete(store, "op-early");
      await putGwxDelete(store, "op-ends");
      await store.put("gateways/gw-x", { instanceId: "gw-x", heartbeatAtMs: Date.now() });
      assert.deepEqual(await b.recovery.reap(), [], "gw-x is alive: its operations are its own");
      // After B's look: gw-x starts another operation and ends one; then its heartbeat lapses.
      await putGwxDelete(store, "op-late");
      await endGwx(store, "op-ends");
      const handled = await b.recovery.reap(Date.now() + 60_000);
      assert.deepEqual(handled.sort(), ["operations/op-early", "operations/op-late"]);
      for (const id of ["op-early", "op-late"]) {
        const op = (await b.operations.get("acme", id))!.value;
        assert.deepEqual([op.done, op.error?.reason], [true, "OPERATION_ABANDONED"], id);
      }
      assert.equal((await b.operations.get("acme", "op-ends"))!.value.error, undefined);
      assert.deepEqual(await b.operations.running(), [], "every entry went with its operation's end");
      assert.deepEqual(await b.recovery.reap(Date.now() + 60_000), [], "nothing is left to take over");
    } finally {
      await gw.close();
    }
  });

  it("after its first look, a look lists the index only and reads no record of a live replica's operation, however many records there are", async () => {
    const gw = await startTestGateway();
    const reads: string[] = [];
    const b = replicaOf(
      gw,
      observedStore(gw.services.store, (method, args) => {
        if (method === "get" || method === "list") reads.push(`${method} ${String(args[0])}`);
      }),
    );
    const store = gw.services.store;
    try {
      for (let i = 0; i < 30; i++) {
        await putGwxDelete(store, `op-${i}`);
        if (i >= 2) await endGwx(store, `op-${i}`);
      }
      await store.put("gateways/gw-x", { instanceId: "gw-x", heartbeatAtMs: Date.now() });
      assert.deepEqual(await b.recovery.reap(), [], "look 1 (of every record): gw-x is alive");
      await putGwxDelete(store, "op-new");
      for (let look = 2; look <= 4; look++) {
        reads.length = 0;
        assert.deepEqual(await b.recovery.reap(), [], `look ${look}`);
        assert.deepEqual(reads, ["list running-operations/", "get gateways/gw-x"], `look ${look}`);
      }
    } finally {
      await gw.close();
    }
  });

  it("an index entry whose operation ended without removing it (ended by a gateway from before the index) is removed, the operation left as it is", async () => {
    const gw = await startTestGateway();
    const b = replicaOf(gw);
    const store = gw.services.store;
    try {
      assert.deepEqual(await b.recovery.reap(), [], "look 1");
      await putGwxDelete(store, "op-ended");
      const ended = (await b.operations.get("acme", "op-ended"))!.value;
      await store.put(registryKeys.operation("acme", "op-ended"), toJson({ ...ended, done: true }));
      assert.deepEqual(await b.recovery.reap(Date.now() + 60_000), []);
      assert.deepEqual(await b.operations.running(), []);
      assert.deepEqual((await b.operations.get("acme", "op-ended"))!.value, { ...ended, done: true });
    } finally {
      await gw.close();
    }
  });
});

describe("operation recovery after the registry went back to an older revision (restored from a backup)", () => {
  /** A registry that is `busy` until `restore()` puts `restored` in its place. */
  const swappableRegistry = () => {
    const busy = openStore("sqlite::memory:");
    const restored = openStore("sqlite::memory:");
    let current: Store = busy;
    const registry: Store = {
      get: (key) => current.get(key),
      list: (prefix, options) => current.list(prefix, options),
      put: (key, value, options) => current.put(key, value, options),
      delete: (key, options) => current.delete(key, options),
      transaction: (ops, options) => current.transaction(ops, options),
      sync: () => current.sync(),
      get maxTransactionOps() {
        return current.maxTransactionOps;
      },
      close: () => Promise.resolve(), // the test closes both
    };
    const restore = () => (current = restored);
    return { busy, restored, registry, restore };
  };
  const putAbandoned = (store: Store, id: string) => putGwxDelete(store, id);

  it("takes over a stopped replica's operation the restored registry holds, at the next look: its index entry was restored with it", async () => {
    const { busy, restored, registry, restore } = swappableRegistry();
    const gw = await startTestGateway({ store: registry });
    const b = replicaOf(gw);
    try {
      for (let i = 0; i < 20; i++) await busy.put(`other/${i}`, i);
      assert.deepEqual(await b.recovery.reap(), []);
      // The restored registry is at a lower revision and holds gw-x's RUNNING delete.
      await putAbandoned(restored, "op-restored");
      restore();
      assert.deepEqual(await b.recovery.reap(), ["operations/op-restored"]);
    } finally {
      await gw.close();
      await Promise.all([busy.close(), restored.close()]);
    }
  });
});

describe("operation recovery of a record with no index entry (written by a gateway from before the index)", () => {
  it("is found by the looks that read every record: the first, then one in 60", async () => {
    const gw = await startTestGateway();
    const b = replicaOf(gw);
    const store = gw.services.store;
    try {
      await putGwxDelete(store, "op-first", false);
      assert.deepEqual(await b.recovery.reap(), ["operations/op-first"], "look 1 (of every record)");
      await putGwxDelete(store, "op-later", false);
      const foundAt: number[] = [];
      for (let look = 2; look <= 61; look++) if ((await b.recovery.reap()).length > 0) foundAt.push(look);
      assert.deepEqual(foundAt, [61], "looks 2-60 read the index only; look 61 reads every record");
      assert.equal((await b.operations.get("acme", "op-later"))!.value.error?.reason, "OPERATION_ABANDONED");
    } finally {
      await gw.close();
    }
  });
});
