// Integers that arrive as text (path, query, headers) are read only when written the canonical
// way; anything else is refused naming the parameter (issue 17 point 4), never truncated. Text
// parameters keep their schema's rules too.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NON_CANONICAL_INTEGERS } from "./support/request-fuzzer.js";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

interface ErrorJson {
  error: { code: string; reason: string; message: string; details: { field?: string } };
}

describe("path, query and header parameters", () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(() => gw.close());

  const refused = async (
    method: "GET" | "PUT",
    url: string,
    field: string,
    headers: Record<string, string> = {},
  ) => {
    const response = await gw.call("operator", method, url, method === "PUT" ? {} : undefined, headers);
    assert.equal(response.statusCode, 400, `${method} ${url} ${JSON.stringify(headers)}: ${response.body}`);
    const { error } = response.json<ErrorJson>();
    assert.equal(error.code, "INVALID_ARGUMENT", response.body);
    assert.equal(error.details.field, field, `${url} names ${field}: ${response.body}`);
  };

  it("a path integer with a fraction, an exponent, a sign, a leading zero, hex or out of range is 400 naming it", async () => {
    for (const irq of NON_CANONICAL_INTEGERS) await refused("GET", `/v1/vms/fz/sources/${irq}`, "irq");
    await refused("PUT", "/v1/vms/fz/queues/1.5/6", "server");
    await refused("PUT", "/v1/vms/fz/queues/1/6.0", "priority");
    await refused("GET", "/v1/vms/fz/queues/1/6e0", "priority");
  });

  it("a canonical integer in range gets past validation (here: the VM does not exist)", async () => {
    for (const url of ["/v1/vms/fz/sources/0", "/v1/vms/fz/sources/4294967295", "/v1/vms/fz/queues/1/6"]) {
      const response = await gw.call("operator", "GET", url);
      assert.equal(response.statusCode, 404, `${url}: ${response.body}`);
      assert.equal(response.json<ErrorJson>().error.reason, "VM_NOT_FOUND");
    }
  });

  it("query integers likewise: pageSize and lastEventId", async () => {
    for (const pageSize of ["1.5", "1e2", "01", " 5", "5 "])
      await refused("GET", `/v1/vms?pageSize=${encodeURIComponent(pageSize)}`, "pageSize");
    await refused("GET", "/v1/operations?pageSize=2.0", "pageSize");
    await refused("GET", "/v1/operations/op-00000000000000000000/events?lastEventId=1.5", "lastEventId");
    assert.equal((await gw.call("operator", "GET", "/v1/vms?pageSize=5")).statusCode, 200);
  });

  it("a Last-Event-ID that is not an event id (fraction, 2^64, text) is 400 naming the header", async () => {
    for (const value of ["1.5", "18446744073709551616", "9007199254740992", "abc", "-1", ""])
      await refused("GET", "/v1/operations/op-00000000000000000000/events", "Last-Event-ID", {
        "last-event-id": value,
      });
  });

  // Parts whose properties are all strings are checked as sent, without TypeBox's conversion (it
  // would copy every header of a create to change nothing): their rules still hold.
  it("a create's Idempotency-Key longer than 255 characters is 400 naming the header", async () => {
    const response = await gw.call(
      "operator",
      "POST",
      "/v1/vms",
      { name: "long-key", vcpus: 1, memoryBytes: 1 << 20, interruptController: { mode: "xive" } },
      { "idempotency-key": "k".repeat(256) },
    );
    assert.equal(response.statusCode, 400, response.body);
    const { error } = response.json<ErrorJson>();
    assert.equal(error.code, "INVALID_ARGUMENT", response.body);
    assert.match(error.details.field ?? "", /idempotency-key/i, response.body);
  });

  it("a VM name in the path that is not a resource id is 400 naming it", async () => {
    const response = await gw.call("operator", "GET", "/v1/vms/Not_An_Id");
    assert.equal(response.statusCode, 400, response.body);
    assert.equal(response.json<ErrorJson>().error.details.field, "vm", response.body);
  });
});
