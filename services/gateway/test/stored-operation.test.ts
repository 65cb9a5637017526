// How an operation record is stored: its events compactly (each only what differs from the one
// before it), read back as the very record that was written, by any replica and every reader
// (GET, the list, the SSE watch, the recovery); a record stored in the earlier form, events
// whole, reads as it was.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { VplaneError } from "@vplane/service-kit";
import { type Store } from "@vplane/store";
import { operationId, operationView, type OperationRecord } from "../src/operations/operation-records.js";
import { newOperationRecord, withEvent } from "../src/operations/operation-runner.js";
import { recordOf, storedForm } from "../src/operations/stored-operation.js";
import { registryKeys } from "../src/registry/registry-keys.js";
import { toJson } from "../src/registry/typed-entry.js";
import type { MigrationStatus } from "../src/schemas/migration-schema.js";
import { openSse, type SseEvent } from "./support/sse-client.js";
import { smallVm } from "./support/small-vm.js";
import {
  startGatewayWithHost,
  startTestGateway,
  type OperationJson,
  type TestGateway,
} from "./support/test-gateway.js";

/** The stored value of operation `name` of tenant acme, as the registry holds it. */
const storedValue = async (store: Store, name: string) =>
  (await store.get(registryKeys.operation("acme", name.slice("operations/".length))))!.value as Record<
    string,
    unknown
  >;

/** Every event of the operation and its end, as a watch of `gw` (listening at `base`) streams them. */
async function watched(gw: TestGateway, base: string, name: string): Promise<SseEvent[]> {
  const stream = await openSse(`${base}/v1/${name}/events`, { authorization: `Bearer ${gw.token.viewer}` });
  const events: SseEvent[] = [];
  for (let e = await stream.next(); e; e = await stream.next()) events.push(e);
  return events;
}

const status = (phase: string, percent: number) =>
  ({ phase, progressPercent: percent }) as unknown as MigrationStatus;

describe("stored operation records", () => {
  it("a record's stored form reads back as the record, whatever its events: truncated, times off the ms, a step's report that is not its last, migration status set, changed and gone", () => {
    let record = newOperationRecord({
      kind: "migrate",
      tenant: "acme",
      vm: "vm-1",
      host: "h1",
      owner: "gw-a",
      steps: ["migration.Start"],
    });
    const step = (
      r: OperationRecord,
      state: "RUNNING" | "FAILED",
      detail?: string,
      migration?: MigrationStatus,
    ) =>
      withEvent(
        {
          ...r,
          metadata: {
            ...r.metadata,
            step: "migration.Start",
            steps: [{ name: "migration.Start", state, ...(detail ? { detail } : {}) }],
            ...(migration ? { migration } : {}),
          },
        },
        `migration.Start: ${state}${detail ? ` (${detail})` : ""}`,
      );
    record = step(record, "RUNNING", "asked", status("PRECOPY", 10));
    record = withEvent({ ...record, metadata: { ...record.metadata, progressPercent: 40 } }, "copying");
    record = withEvent(
      { ...record, metadata: { ...record.metadata, migration: status("PRECOPY", 40) } },
      "migration.Start: looks like a step line",
    );
    record = step(record, "FAILED", "UNAVAILABLE: gone");
    const { migration: _gone, ...metadata } = record.metadata;
    record = withEvent({ ...record, metadata }, "migration status dropped");
    record.events[2]!.time = "2026-12-07T16:18:09Z"; // no ms: not what toISOString gives
    const truncated = { ...record, events: record.events.slice(2) };

    for (const r of [record, truncated]) {
      const stored = JSON.parse(JSON.stringify(storedForm(r))) as unknown;
      assert.deepEqual(recordOf(stored), r);
      assert.equal(JSON.stringify(operationView(recordOf(stored))), JSON.stringify(operationView(r)));
      for (const [i, event] of recordOf(stored).events.entries())
        assert.equal(JSON.stringify(event), JSON.stringify(r.events[i]), "each event's JSON, key order too");
    }
  });

  it("a create's record is stored in under 60% of its whole form, and any replica's GET, list and watch read it exactly as the replica that ran it", async () => {
    const { gw, host, close } = await startGatewayWithHost();
    const other = await startTestGateway({ store: gw.services.store, tokens: gw.tokens });
    const { base } = await other.listen();
    try {
      const ended = new Map<string, OperationRecord>();
      gw.services.runner.events.setMaxListeners(0);
      const runs: [string, Record<string, unknown>][] = [
        ["plain", smallVm("plain-1")],
        ["smmu", smallVm("smmu-1", [{ name: "s0", devices: [{ physicalSid: 16, virtualSid: 1 }] }])],
        ["failed", smallVm("failed-1", [{ name: "s0" }])],
      ];
      for (const [kind, body] of runs) {
        if (kind === "failed")
          host.failures.set("CreateSmmu", {
            error: new VplaneError({
              code: "RESOURCE_EXHAUSTED",
              reason: "NO_SMMU",
              message: "no SMMU left",
            }),
          });
        const created = await gw.call("operator", "POST", "/v1/vms", body);
        assert.equal(created.statusCode, 202, created.body);
        const name = created.json<OperationJson>().name;
        const key = `acme/${name.slice("operations/".length)}`;
        const listener = (record: OperationRecord) => ended.set(name, record);
        gw.services.runner.events.on(key, listener);
        const done = await gw.waitForOperation("operator", name);
        await gw.services.runner.drain();
        gw.services.runner.events.off(key, listener);
        assert.equal(
          done.metadata.state,
          kind === "failed" ? "FAILED" : "SUCCEEDED",
          JSON.stringify(done.error),
        );

        const ran = ended.get(name)!; // the record as the running replica last stored it
        assert.equal(ran.done, true);
        const stored = await storedValue(gw.services.store, name);
        assert.equal(stored.events, undefined, "events are not stored whole");
        const size = JSON.stringify(stored).length;
        const whole = JSON.stringify(ran).length;
        assert.ok(size < 0.6 * whole, `${kind}: stored ${size} bytes of ${whole}`);

        // Another replica reads it from the registry: the same operation, the same events.
        const get = await other.call("viewer", "GET", `/v1/${name}`);
        assert.equal(get.body, JSON.stringify(operationView(ran)));
        const listed = (await other.call("viewer", "GET", "/v1/operations?pageSize=100")).json<{
          operations: OperationJson[];
        }>().operations;
        assert.deepEqual(
          listed.find((op) => op.name === name),
          JSON.parse(JSON.stringify(operationView(ran))),
        );
        const events = await watched(other, base, name);
        assert.deepEqual(
          events.filter((e) => e.event === "progress").map((e) => e.data),
          JSON.parse(JSON.stringify(ran.events)),
        );
        assert.deepEqual(events.at(-1)?.data, JSON.parse(JSON.stringify(operationView(ran))));
      }
    } finally {
      await other.close();
      await close();
    }
  });

  it("a record stored in the earlier form (its events whole) reads as it was, and changed by a replica is stored in the compact form with its events intact", async () => {
    const { gw, close } = await startGatewayWithHost();
    try {
      const created = await gw.createVm("operator", smallVm("old-1"));
      const id = operationId(created);
      const record = (await gw.services.operations.get("acme", id))!.value;
      // As a gateway before the compact form wrote it: the record itself, RUNNING under a
      // replica that stopped.
      const old: OperationRecord = {
        ...record,
        done: false,
        owner: "gw-gone",
        name: "operations/op-0123456789abcdef0123",
      };
      delete old.response;
      old.metadata = { ...old.metadata, state: "RUNNING" };
      const oldId = operationId(old);
      await gw.services.store.put(registryKeys.operation("acme", oldId), toJson(old));

      const get = await gw.call("viewer", "GET", `/v1/${old.name}`);
      assert.equal(get.body, JSON.stringify(operationView(old)));
      assert.deepEqual((await gw.services.operations.get("acme", oldId))!.value, old);

      // The recovery reads it and ends it: its events are kept, one more says so.
      await gw.services.store.put("gateways/gw-gone", { instanceId: "gw-gone", heartbeatAtMs: 0 });
      await gw.services.recovery.reap(Date.now() + 60_000);
      const stored = await storedValue(gw.services.store, old.name);
      assert.equal(stored.events, undefined, "written again in the compact form");
      const now = (await gw.services.operations.get("acme", oldId))!.value;
      assert.equal(now.done, true);
      assert.deepEqual(now.events.slice(0, old.events.length), old.events);
      assert.equal(now.events.length, old.events.length + 1);
      assert.match(now.events.at(-1)!.message, /^failed: gateway replica gw-gone stopped/);
    } finally {
      await close();
    }
  });
});
