// The audit trail (issue 15 point 5): every state-changing REST call is one JSON line on a stream
// of its own — who (token id, role), tenant, method, resource, outcome, request id.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AuditLog, type AuditRecord } from "../src/access/audit-log.js";
import { startGatewayWithHost } from "./support/test-gateway.js";
import { jsonLineSink } from "./support/json-line-sink.js";

const vmBody = { name: "audited", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } };

describe("audit trail", () => {
  it("writes one line for each create, migrate and delete, with who, tenant, resource, outcome and request id", async () => {
    const { lines, sink } = jsonLineSink();
    const { gw, close } = await startGatewayWithHost({ auditDestination: sink });
    try {
      const operatorId = gw.tokens.authenticate(`Bearer ${gw.token.operator}`)!.tokenId;
      const created = await gw.call("operator", "POST", "/v1/vms", vmBody, { "x-request-id": "req-create" });
      assert.equal(created.statusCode, 202, created.body);
      const createOperation = created.json<{ name: string }>().name;
      await gw.waitForOperation("operator", createOperation);
      const migrated = await gw.call(
        "operator",
        "POST",
        "/v1/vms/audited:migrate",
        { destinationHost: "h1" },
        {
          "x-request-id": "req-migrate",
        },
      );
      assert.equal(migrated.statusCode, 400, "h1 is its own host: refused, and audited as refused");
      const deleted = await gw.call("operator", "DELETE", "/v1/vms/audited", undefined, {
        "x-request-id": "req-delete",
      });
      assert.equal(deleted.statusCode, 202, deleted.body);
      await gw.call("viewer", "GET", "/v1/vms"); // reads are not audited

      const who = { tokenId: operatorId, role: "operator", tenant: "acme" };
      assert.deepEqual(
        lines.map(({ time: _time, ...line }) => line),
        [
          {
            requestId: "req-create",
            ...who,
            method: "POST",
            resource: "/v1/vms",
            name: "audited",
            status: 202,
            outcome: "OK",
            operation: createOperation,
          },
          {
            requestId: "req-migrate",
            ...who,
            method: "POST",
            resource: "/v1/vms/audited:migrate",
            status: 400,
            outcome: "INVALID_ARGUMENT",
            reason: "DESTINATION_IS_SOURCE",
          },
          {
            requestId: "req-delete",
            ...who,
            method: "DELETE",
            resource: "/v1/vms/audited",
            status: 202,
            outcome: "OK",
            operation: deleted.json<{ name: string }>().name,
          },
        ],
      );
      assert.ok(
        lines.every((line) => typeof line["time"] === "string"),
        "each line has its time",
      );
    } finally {
      await close();
    }
  });

  it("audits refused calls too: no token (no one to name), a role too low (named: the token that tried)", async () => {
    const { lines, sink } = jsonLineSink();
    const { gw, close } = await startGatewayWithHost({ auditDestination: sink });
    try {
      const viewerId = gw.tokens.authenticate(`Bearer ${gw.token.viewer}`)!.tokenId;
      await gw.call(null, "POST", "/v1/vms", vmBody);
      await gw.call("viewer", "DELETE", "/v1/vms/audited");
      assert.deepEqual(
        lines.map((line) => [line["tokenId"], line["role"], line["tenant"], line["status"], line["outcome"]]),
        [
          [null, null, null, 401, "UNAUTHENTICATED"],
          [viewerId, "viewer", "acme", 403, "PERMISSION_DENIED"],
        ],
      );
    } finally {
      await close();
    }
  });
});

describe("audit file", () => {
  const entry = (requestId: string): AuditRecord => ({
    requestId,
    tokenId: "t1",
    role: "operator",
    tenant: "acme",
    method: "POST",
    resource: "/v1/vms",
    status: 202,
    outcome: "OK",
  });

  it("a recorded line is in the file when record returns, so before the call's answer leaves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vplane-audit-"));
    const audit = AuditLog.open(join(dir, "sub", "audit.log"));
    try {
      audit.record(entry("r1"));
      const lines = readFileSync(join(dir, "sub", "audit.log"), "utf8")
        .trimEnd()
        .split("\n");
      assert.deepEqual(
        lines.map((line) => (JSON.parse(line) as AuditRecord).requestId),
        ["r1"],
      );
    } finally {
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a file closed at once still holds what it recorded, and a file opened again appends (no 'not ready' throw)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vplane-audit-"));
    try {
      const path = join(dir, "sub", "audit.log");
      const first = AuditLog.open(path);
      first.record(entry("r1"));
      await first.close();
      const second = AuditLog.open(path);
      second.record(entry("r2"));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await second.close();
      const lines = readFileSync(path, "utf8").trimEnd().split("\n");
      assert.deepEqual(
        lines.map((line) => (JSON.parse(line) as AuditRecord).requestId),
        ["r1", "r2"],
        "appended, in order",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
