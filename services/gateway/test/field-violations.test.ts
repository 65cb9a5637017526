import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startGatewayWithHost, type TestGateway } from "./support/test-gateway.js";

interface FieldViolation {
  field: string;
  description: string;
  reason: string;
}
interface ErrorJson {
  error: {
    code: string;
    reason: string;
    message: string;
    details: { field?: string; fieldViolations?: FieldViolation[] };
  };
}

/** The violations as "field REASON", sorted: the rules below do not fix an order. */
const listed = (violations: FieldViolation[] | undefined) =>
  (violations ?? []).map((v) => `${v.field} ${v.reason}`).sort();

describe("every field error in one answer, as google.rpc.BadRequest field violations (issue 15 point 4)", () => {
  let gw: TestGateway;
  let stop: () => Promise<void>;
  before(async () => {
    ({ gw, close: stop } = await startGatewayWithHost());
  });
  after(() => stop());

  it("a body with several bad fields is one 400 listing each (path and reason), not only the first", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name: "Bad_Name",
      vcpus: "two",
      memoryBytes: 1 << 30,
      color: "blue",
      iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: -1, virtualSid: 0 }] }] },
    });
    assert.equal(response.statusCode, 400, response.body);
    const { error } = response.json<ErrorJson>();
    assert.deepEqual([error.code, error.reason], ["INVALID_ARGUMENT", "SCHEMA_VALIDATION_FAILED"]);
    assert.deepEqual(listed(error.details.fieldViolations), [
      "color UNKNOWN_FIELD",
      "interruptController REQUIRED",
      "iommu.smmus[0].devices[0].physicalSid OUT_OF_RANGE",
      "name BAD_FORMAT",
      "vcpus WRONG_TYPE",
    ]);
    for (const violation of error.details.fieldViolations ?? [])
      assert.ok(violation.description.length > 0, `${violation.field} says why`);
    assert.equal(error.details.field, error.details.fieldViolations?.[0]?.field, "details.field: the first");
    for (const field of ["vcpus", "interruptController", "color"])
      assert.match(error.message, new RegExp(field));
  });

  it("a field is listed once, under the first rule it broke (a missing object is not also 'not an object')", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name: "vm-1",
      vcpus: 2,
      memoryBytes: 1 << 30,
    });
    assert.deepEqual(listed(response.json<ErrorJson>().error.details.fieldViolations), [
      "interruptController REQUIRED",
    ]);
  });

  it("a bad string enum value is NOT_ALLOWED and its description names the values it takes", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name: "vm-1",
      vcpus: 2,
      memoryBytes: 1 << 30,
      interruptController: { mode: "apic" },
    });
    const [violation] = response.json<ErrorJson>().error.details.fieldViolations ?? [];
    assert.equal(`${violation?.field} ${violation?.reason}`, "interruptController.mode NOT_ALLOWED");
    assert.match(violation?.description ?? "", /xive.*xics.*dual/);
  });

  it("a bad path parameter and a bad body are reported together (fastify stops at the first part)", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms/Not_An_Id:migrate", {
      targetHost: "h1",
      downtimeLimitMs: -1,
    });
    assert.equal(response.statusCode, 400, response.body);
    assert.deepEqual(listed(response.json<ErrorJson>().error.details.fieldViolations), [
      "destinationHost REQUIRED",
      "downtimeLimitMs OUT_OF_RANGE",
      "targetHost UNKNOWN_FIELD",
      "vm BAD_FORMAT",
    ]);
  });

  it("a query parameter out of range is a violation named after the parameter", async () => {
    const response = await gw.call("viewer", "GET", "/v1/vms?pageSize=5000");
    assert.deepEqual(listed(response.json<ErrorJson>().error.details.fieldViolations), [
      "pageSize OUT_OF_RANGE",
    ]);
  });

  it("a body that is not an object at all is one violation of the field 'body'", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", [1, 2]);
    assert.deepEqual(listed(response.json<ErrorJson>().error.details.fieldViolations), ["body WRONG_TYPE"]);
  });

  it("a field error found past the schema (the gateway's own checks) is a one-entry list with its reason", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name: "vm-1",
      vcpus: 2,
      memoryBytes: 1 << 30,
      interruptController: { mode: "xive" },
      iommu: { smmus: [{ name: "s0" }, { name: "s0" }] },
    });
    assert.equal(response.statusCode, 400, response.body);
    const { error } = response.json<ErrorJson>();
    assert.equal(error.reason, "DUPLICATE_SMMU");
    assert.deepEqual(error.details.fieldViolations, [
      { field: "iommu.smmus[1].name", description: error.message, reason: "DUPLICATE_SMMU" },
    ]);
  });

  it("several problems past the schema are all listed, under INVALID_VM_SPEC", async () => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name: "vm-1",
      vcpus: 2,
      memoryBytes: 1 << 30,
      interruptController: { mode: "xive" },
      iommu: {
        smmus: [
          { name: "s0", sidBits: 4, devices: [{ physicalSid: 1, virtualSid: 16 }] },
          { name: "s0", devices: [{ physicalSid: 1, virtualSid: 0 }] },
        ],
      },
    });
    assert.equal(response.statusCode, 400, response.body);
    const { error } = response.json<ErrorJson>();
    assert.equal(error.reason, "INVALID_VM_SPEC");
    assert.deepEqual(listed(error.details.fieldViolations), [
      "iommu.smmus[0].devices[0].virtualSid STREAM_ID_OUT_OF_RANGE",
      "iommu.smmus[1].devices[0].physicalSid DUPLICATE_STREAM_ID",
      "iommu.smmus[1].name DUPLICATE_SMMU",
    ]);
  });
});
