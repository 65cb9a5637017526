import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { AccessTokens } from "../src/access/access-tokens.js";
import { startGateway } from "../src/gateway.js";
import { gatewayOptionsSpec } from "../src/gateway-options.js";
import { loadConfig } from "@vplane/service-kit";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

const vmBody = { name: "vm-1", vcpus: 2, memoryBytes: 1 << 30, interruptController: { mode: "xive" } };

describe("tokens file: hashed tokens mapped to tenant and role", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "vplane-tokens-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("first open without a file creates one admin token, hands it over once, and stores only its hash", () => {
    const path = join(dir, "tokens.json");
    const shown: string[] = [];
    const tokens = AccessTokens.open(path, { bootstrapAdmin: (token) => shown.push(token) });
    assert.equal(shown.length, 1);
    const token = shown[0]!;
    assert.match(token, /^vpl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(path, "utf8");
    assert.ok(!text.includes(token.slice(17)), "the secret is not in the file");
    assert.equal(statSync(path).mode & 0o777, 0o600, "readable by its owner only");
    const file = JSON.parse(text) as {
      tokens: { role: string; tenant: string; sha256: string; salt: string }[];
    };
    assert.equal(file.tokens.length, 1);
    assert.deepEqual([file.tokens[0]!.role, file.tokens[0]!.tenant], ["admin", "default"]);
    assert.match(file.tokens[0]!.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(tokens.authenticate(`Bearer ${token}`), {
      tokenId: token.slice(4, 16),
      tenant: "default",
      role: "admin",
    });
    // A second open finds the file: no new token, the old one still works.
    const again = AccessTokens.open(path, { bootstrapAdmin: () => assert.fail("no second admin token") });
    assert.equal(again.authenticate(`Bearer ${token}`)?.role, "admin");
  });

  it("rejects a wrong secret, an unknown id, another scheme and garbage", () => {
    const tokens = AccessTokens.inMemory();
    const { token } = tokens.issue({ tenant: "acme", role: "viewer" });
    const flipped = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    for (const header of [
      `Bearer ${flipped}`,
      `Basic ${token}`,
      "Bearer vpl_000000000000_" + "a".repeat(43),
      "Bearer x",
      "",
    ]) {
      assert.equal(tokens.authenticate(header), undefined, header);
    }
    assert.equal(tokens.authenticate(`bearer ${token}`)?.tenant, "acme");
  });

  it("picks up tokens issued into the file by another process without a restart", async () => {
    const path = join(dir, "shared.json");
    const running = AccessTokens.open(path, { bootstrapAdmin: () => undefined });
    const writer = AccessTokens.open(path);
    const { token } = writer.issue({ tenant: "acme", role: "operator" });
    writer.save();
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the file is re-checked at most once a second
    assert.equal(running.authenticate(`Bearer ${token}`)?.role, "operator");
  });
});

describe("issue-token: adds a hashed token to the tokens file and prints it once", () => {
  it("a token it prints is accepted by the gateway's tokens", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const dir = mkdtempSync(join(tmpdir(), "vplane-issue-"));
    try {
      const path = join(dir, "tokens.json");
      const script = new URL("../src/issue-token.js", import.meta.url).pathname;
      const { stdout } = await promisify(execFile)(process.execPath, [
        script,
        "--tenant",
        "acme",
        "--role",
        "viewer",
        "--tokens-file",
        path,
      ]);
      const token = stdout.trim();
      assert.match(token, /^vpl_[0-9a-f]{12}_/);
      assert.ok(!readFileSync(path, "utf8").includes(token.slice(17)));
      assert.deepEqual(AccessTokens.open(path).authenticate(`Bearer ${token}`)?.role, "viewer");
      const bad = await promisify(execFile)(process.execPath, [
        script,
        "--tenant",
        "acme",
        "--role",
        "root",
      ]).catch((error: { code: number }) => error);
      assert.equal((bad as { code: number }).code, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("authentication and roles on /v1", () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(() => gw.close());

  it("without a token: 401 UNAUTHENTICATED TOKEN_MISSING with WWW-Authenticate; a bad one: TOKEN_INVALID", async () => {
    const missing = await gw.call(null, "GET", "/v1/vms");
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.headers["www-authenticate"], 'Bearer realm="vplane"');
    assert.deepEqual(
      [
        missing.json<{ error: { code: string } }>().error.code,
        missing.json<{ error: { reason: string } }>().error.reason,
      ],
      ["UNAUTHENTICATED", "TOKEN_MISSING"],
    );
    const bad = await gw.call(null, "GET", "/v1/vms", undefined, { authorization: "Bearer nope" });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json<{ error: { reason: string } }>().error.reason, "TOKEN_INVALID");
  });

  it("a viewer reads but cannot write: 403 PERMISSION_DENIED on create, delete and cancel", async () => {
    assert.equal((await gw.call("viewer", "GET", "/v1/vms")).statusCode, 200);
    for (const [method, url, body] of [
      ["POST", "/v1/vms", vmBody],
      ["DELETE", "/v1/vms/vm-1", undefined],
      ["POST", "/v1/operations/op-00000000000000000000/cancel", undefined],
    ] as const) {
      const response = await gw.call("viewer", method, url, body);
      assert.equal(response.statusCode, 403, `${method} ${url}`);
      assert.equal(response.json<{ error: { code: string } }>().error.code, "PERMISSION_DENIED");
    }
  });

  it("only admins register and remove hosts; every role may read them", async () => {
    const spec = {
      name: "h9",
      addresses: { interruptController: "127.0.0.1:1", iommu: "127.0.0.1:1", migration: "127.0.0.1:1" },
    };
    for (const who of ["operator", "viewer"] as const) {
      const response = await gw.call(who, "POST", "/v1/hosts", spec);
      assert.equal(response.statusCode, 403, who);
    }
    assert.equal((await gw.call("admin", "POST", "/v1/hosts", spec)).statusCode, 201);
    assert.equal((await gw.call("viewer", "GET", "/v1/hosts")).statusCode, 200);
    assert.equal((await gw.call("operator", "DELETE", "/v1/hosts/h9")).statusCode, 403);
    assert.equal((await gw.call("admin", "DELETE", "/v1/hosts/h9")).statusCode, 204);
  });
});

describe("secrets never reach the log", () => {
  it("logs carry the request id but never the bearer token", async () => {
    let logged = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged += chunk.toString();
        done();
      },
    });
    const gw = await startTestGateway({ logDestination: sink });
    try {
      await gw.call("admin", "GET", "/v1/vms", undefined, { "x-request-id": "trace-me-42" });
      await gw.call("admin", "POST", "/v1/vms", { ...vmBody, name: "NOPE" });
      await gw.call(null, "GET", "/v1/vms", undefined, { authorization: `Bearer ${gw.token.operator}x` });
      assert.match(logged, /trace-me-42/);
      for (const token of Object.values(gw.token)) {
        assert.ok(!logged.includes(token.slice(17)), "no token secret in the log");
      }
      assert.ok(!/vpl_[0-9a-f]{12}_/.test(logged), "no token in the log");
    } finally {
      await gw.close();
    }
  });
});

describe("first start of the embedded gateway", () => {
  it("creates an admin token once, prints it through the hook only, and accepts it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vplane-gw-"));
    const config = loadConfig(gatewayOptionsSpec, {
      argv: [],
      env: { VPLANE_DATA_DIR: dir, VPLANE_GATEWAY_ADDR: "127.0.0.1:0", VPLANE_LOG_LEVEL: "silent" },
    });
    const log = pino({ level: "silent" });
    try {
      const shown: string[] = [];
      const first = await startGateway(config, log, { onAdminToken: (t) => shown.push(t) });
      const response = await fetch(`${first.url}/v1/hosts`, {
        headers: { authorization: `Bearer ${shown[0]}` },
      });
      assert.equal(response.status, 200);
      await first.close();
      const second = await startGateway(config, log, { onAdminToken: () => assert.fail("printed twice") });
      await second.close();
      assert.equal(shown.length, 1);
      assert.ok(!readFileSync(join(dir, "tokens.json"), "utf8").includes(shown[0]!.slice(17)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
