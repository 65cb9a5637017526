// The generated client (openapi-fetch over the types openapi-typescript made from the document)
// against a real gateway: paths, parameters, bodies and the error shape as the document says.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig } from "@vplane/service-kit";
import { gatewayOptionsSpec, startGateway } from "@vplane/gateway";
import pino from "pino";
import { createGatewayClient } from "../src/index.js";

describe("generated gateway client", () => {
  it("lists, reads and refuses as the gateway answers, typed by the OpenAPI document", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vplane-client-"));
    const config = loadConfig(gatewayOptionsSpec, {
      argv: [],
      env: {
        VPLANE_DATA_DIR: dir,
        VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
        VPLANE_GATEWAY_AUDIT_LOG: join(dir, "a.log"),
      },
    });
    let token = "";
    const gateway = await startGateway(config, pino({ level: "silent" }), {
      onAdminToken: (t) => (token = t),
    });
    try {
      const client = createGatewayClient({ baseUrl: gateway.url, token });
      const listed = await client.GET("/v1/vms");
      assert.deepEqual(listed.data?.vms, []);
      const missing = await client.GET("/v1/vms/{vm}", { params: { path: { vm: "nope" } } });
      assert.equal(missing.response.status, 404);
      assert.equal(missing.error?.error.reason, "VM_NOT_FOUND");
      const refused = await client.POST("/v1/vms", {
        body: { name: "web-1", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } },
      });
      assert.equal(refused.error?.error.code, "FAILED_PRECONDITION", "no host to place it on");
      const anonymous = await createGatewayClient({ baseUrl: gateway.url }).GET("/v1/hosts");
      assert.equal(anonymous.response.status, 401);
    } finally {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
