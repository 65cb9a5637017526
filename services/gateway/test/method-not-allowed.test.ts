import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

interface ErrorJson {
  error: { code: string; reason: string; message: string };
}

describe("a known path asked with a method it lacks is 405 with Allow (RFC 9110 15.5.6), not 404", () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(() => gw.close());

  it("answers 405 UNIMPLEMENTED METHOD_NOT_ALLOWED (grpc-gateway's mapping) and lists the path's methods in Allow", async () => {
    const cases: [method: "PUT" | "PATCH" | "GET" | "DELETE" | "POST", url: string, allow: string][] = [
      ["PUT", "/v1/vms/vm-1", "GET, HEAD, DELETE"],
      ["PATCH", "/v1/vms", "GET, HEAD, POST"],
      ["GET", "/v1/operations/op-00000000000000000000/cancel", "POST"],
      ["DELETE", "/healthz", "GET, HEAD"],
      ["POST", "/v1/operations/op-00000000000000000000?x=1", "GET, HEAD"],
    ];
    for (const [method, url, allow] of cases) {
      const response = await gw.call(
        "admin",
        method,
        url,
        method === "GET" || method === "DELETE" ? undefined : {},
      );
      assert.equal(response.statusCode, 405, `${method} ${url}: ${response.body}`);
      assert.equal(response.headers.allow, allow, `${method} ${url}`);
      const { error } = response.json<ErrorJson>();
      assert.deepEqual([error.code, error.reason], ["UNIMPLEMENTED", "METHOD_NOT_ALLOWED"]);
      assert.match(error.message, new RegExp(`has no ${method}`));
    }
  });

  it("a path no route has stays 404 ROUTE_NOT_FOUND, without Allow", async () => {
    const response = await gw.call("admin", "GET", "/v1/nothing-here");
    assert.equal(response.statusCode, 404);
    assert.equal(response.headers.allow, undefined);
    assert.equal(response.json<ErrorJson>().error.reason, "ROUTE_NOT_FOUND");
  });

  it("the methods a path has still answer as before (the check runs only for unrouted requests)", async () => {
    const response = await gw.call("viewer", "GET", "/v1/vms");
    assert.equal(response.statusCode, 200, response.body);
  });
});
