// Every answer the gateway gives, from any layer (router, HTTP parser, body reader), is in the
// one error shape {error: {code, reason, message, details}} (issue 17 point 5).
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { suiteListeningGateway } from "./support/test-gateway.js";

function assertErrorShape(text: string, code: string, reason: string) {
  const body = JSON.parse(text) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(body), ["error"], text);
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "details", "message", "reason"], text);
  assert.deepEqual([body.error["code"], body.error["reason"]], [code, reason], text);
}

/** Writes `request` on a raw connection and returns everything the server sends before closing. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.end(request));
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

describe("framework errors in the error shape", () => {
  const suite = suiteListeningGateway();

  it("a URL that does not decode: 400 INVALID_ARGUMENT BAD_URL", async () => {
    for (const url of ["/v1/vms/%FF%FE", "/v1/vms/%E0%A4%A", "/v1/operations/%ZZ"]) {
      const response = await suite.gw.call("operator", "GET", url);
      assert.equal(response.statusCode, 400, `${url}: ${response.body}`);
      assertErrorShape(response.body, "INVALID_ARGUMENT", "BAD_URL");
    }
  });

  it("a path parameter over 100 characters: 414 INVALID_ARGUMENT PATH_PARAMETER_TOO_LONG", async () => {
    for (const url of [
      `/v1/vms/${"a".repeat(101)}`,
      `/v1/vms/x/sources/${"1".repeat(120)}`,
      `/v1/hosts/${"h".repeat(200)}`,
    ]) {
      const response = await suite.gw.call("operator", "GET", url);
      assert.equal(response.statusCode, 414, `${url}: ${response.body}`);
      assertErrorShape(response.body, "INVALID_ARGUMENT", "PATH_PARAMETER_TOO_LONG");
    }
  });

  it("a request that is not HTTP, and headers over the size limit, are answered in the shape on the socket", async () => {
    const garbage = await rawExchange(suite.port, "NOT HTTP AT ALL\r\n\r\n");
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assertErrorShape(garbage.slice(garbage.indexOf("\r\n\r\n") + 4), "INVALID_ARGUMENT", "MALFORMED_HTTP");
    const huge = await rawExchange(
      suite.port,
      `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    assert.match(huge, /^HTTP\/1\.1 431 /);
    assertErrorShape(huge.slice(huge.indexOf("\r\n\r\n") + 4), "INVALID_ARGUMENT", "HEADERS_TOO_LARGE");
  });
});
