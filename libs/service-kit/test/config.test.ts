import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../src/config.js";
import { serverOptionsSpec } from "../src/server-options.js";

const spec = serverOptionsSpec("ECHO", 50099);
const fixture = fileURLToPath(new URL("./fixtures/echo-main.js", import.meta.url));
// The child is a service, not a test file: keep node's test runner from treating it as one.
const { NODE_TEST_CONTEXT: _testContext, ...childEnv } = process.env;

describe("configuration", () => {
  it("defaults to loopback and the service's port", () => {
    const config = loadConfig(spec, { argv: [], env: {} });
    assert.equal(config.address, "127.0.0.1:50099");
    assert.equal(config.shutdownGraceMs, 10_000);
  });

  it("takes a flag over the environment over the default", () => {
    const config = loadConfig(spec, {
      argv: ["--addr", "0.0.0.0:1234", "--log-level=warn"],
      env: { VPLANE_ECHO_ADDR: "127.0.0.1:9", VPLANE_SHUTDOWN_GRACE_MS: "250" },
    });
    assert.equal(config.address, "0.0.0.0:1234");
    assert.equal(config.logLevel, "warn");
    assert.equal(config.shutdownGraceMs, 250);
  });

  it("reports every bad value at once, naming the variable, the flag and what was expected", () => {
    assert.throws(
      () =>
        loadConfig(spec, {
          argv: ["--bogus"],
          env: { VPLANE_ECHO_ADDR: "nowhere", VPLANE_SHUTDOWN_GRACE_MS: "-5", VPLANE_LOG_LEVEL: "loud" },
        }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 4);
        assert.match(e.message, /VPLANE_ECHO_ADDR \/ --addr: 'nowhere' is not host:port/);
        assert.match(
          e.message,
          /VPLANE_SHUTDOWN_GRACE_MS \/ --shutdown-grace-ms: '-5' is not an integer between 0 and 600000/,
        );
        assert.match(e.message, /'loud' is not one of fatal, error/);
        assert.match(e.message, /unknown argument '--bogus'/);
        return true;
      },
    );
  });

  it("makes a service process exit 2 with a readable message, not a stack trace", async () => {
    const child = spawn(process.execPath, [fixture], {
      env: { ...childEnv, VPLANE_ECHO_ADDR: "not-an-address" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 2);
    assert.match(stderr, /echo: invalid configuration:\n {2}- VPLANE_ECHO_ADDR \/ --addr: 'not-an-address'/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });
});

describe("service process", () => {
  it("starts, says where it listens, and exits 0 on SIGTERM after draining", async () => {
    const child = spawn(process.execPath, [fixture], {
      env: { ...childEnv, VPLANE_ECHO_ADDR: "127.0.0.1:0" },
    });
    let stdout = "";
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (/listening on[^\n]*\n/.test(stdout)) resolve();
      }),
    );
    assert.match(stdout, /"msg":"echo listening on 127\.0\.0\.1:\d+"/);
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 0);
    assert.match(stdout, /"outcome":"graceful"/);
  });
});
