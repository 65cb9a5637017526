import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ServiceError } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo } from "@vplane/proto/gen/google/rpc/error_details";
import { Status } from "@vplane/proto/gen/google/rpc/status";
import { unaryCall } from "../src/unary-call.js";
import { VplaneError } from "../src/vplane-error.js";
import { startEcho } from "./support.js";

describe("error model", () => {
  let env: Awaited<ReturnType<typeof startEcho>>;
  before(async () => {
    env = await startEcho();
  });
  after(async () => {
    env.echo.close();
    await env.service.stop(1000);
  });

  it("delivers code, reason, errno, H_* code and field to the client", async () => {
    const error = await unaryCall(env.echo.echo.bind(env.echo), {
      payload: "",
      failWithReason: "PRIORITY_RESERVED",
    }).then(
      () => assert.fail("call should fail"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof VplaneError);
    assert.equal(error.code, "INVALID_ARGUMENT");
    assert.equal(error.reason, "PRIORITY_RESERVED");
    assert.equal(error.errno, 22);
    assert.equal(error.hcallReturnCode, -55);
    assert.equal(error.field, "fail_with_reason");
  });

  it("carries a google.rpc.Status with one ErrorInfo in grpc-status-details-bin (AIP-193)", async () => {
    const raw = await new Promise<ServiceError>((resolve) =>
      env.echo.echo({ payload: "", failWithReason: "SOURCE_NOT_VALID" }, (e) => resolve(e!)),
    );
    assert.equal(raw.code, 3);
    const status = Status.decode(raw.metadata.get("grpc-status-details-bin")[0] as Buffer);
    assert.equal(status.code, 3);
    const infos = status.details.filter((d) => d.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo");
    assert.equal(infos.length, 1);
    const info = ErrorInfo.decode(infos[0]!.value);
    assert.equal(info.reason, "SOURCE_NOT_VALID");
    assert.equal(info.domain, "vplane.dev");
    assert.deepEqual(info.metadata, { errno: "22", hcall_return_code: "-55", field: "fail_with_reason" });
  });

  it("an error naming a field also carries it as a google.rpc.BadRequest field violation (AIP-193)", async () => {
    const raw = await new Promise<ServiceError>((resolve) =>
      env.echo.echo({ payload: "", failWithReason: "SOURCE_NOT_VALID" }, (e) => resolve(e!)),
    );
    const status = Status.decode(raw.metadata.get("grpc-status-details-bin")[0] as Buffer);
    const badRequests = status.details.filter(
      (d) => d.typeUrl === "type.googleapis.com/google.rpc.BadRequest",
    );
    assert.equal(badRequests.length, 1);
    const [violation] = BadRequest.decode(badRequests[0]!.value).fieldViolations;
    assert.deepEqual(
      [violation?.field, violation?.reason, violation?.description],
      ["fail_with_reason", "SOURCE_NOT_VALID", raw.details],
    );
  });

  it("answers success unchanged", async () => {
    const response = await unaryCall(env.echo.echo.bind(env.echo), { payload: "hello", failWithReason: "" });
    assert.equal(response.payload, "hello");
  });
});
