// The gateway process's operational log gathers its lines into few writes (http/log-destination.ts)
// but still writes each line: one held back (fewer bytes than a write's minimum) leaves within
// the flush interval without more lines behind it, and what is held when the process stops is
// written before it exits. Each line is one JSON object.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs, { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { gatewayLogDestination } from "../src/http/log-destination.js";

const realWriteSync = fs.writeSync;
const destinationModule = new URL("../src/http/log-destination.js", import.meta.url).href;
const gatewayMain = fileURLToPath(new URL("../src/main.js", import.meta.url));

describe("the gateway process's log", () => {
  it(
    "writes a lone line without more lines behind it, and every held line before it exits",
    { timeout: 30_000 },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), "gateway-log-"));
      const child = spawn(process.execPath, [gatewayMain], {
        env: {
          PATH: process.env["PATH"] ?? "",
          VPLANE_LOG_LEVEL: "info",
          VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
          VPLANE_DATA_DIR: dir,
          VPLANE_TOKENS_FILE: join(dir, "tokens.json"),
        },
        stdio: ["ignore", "pipe", "ignore"],
      });
      t.signal.addEventListener("abort", () => child.kill("SIGKILL")); // a line that never came
      try {
        let output = "";
        child.stdout.setEncoding("utf8");
        // The "listening" line is far below a write's minimum and nothing follows it until a call.
        await new Promise<void>((resolve) =>
          child.stdout.on("data", (chunk: string) => {
            output += chunk;
            if (output.includes("listening on")) resolve();
          }),
        );
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        await exited;
        const lines = output
          .trimEnd()
          .split("\n")
          .map((line) => JSON.parse(line) as { msg: string; outcome?: string });
        assert.deepEqual(
          lines.slice(-2).map(({ msg, outcome }) => ({ msg, outcome })),
          [
            { msg: "signal received: draining", outcome: undefined },
            { msg: "stopped", outcome: "graceful" },
          ],
        );
      } finally {
        child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("the log destination (its own writes, gathered)", () => {
  it("writes nothing while no line is held, and a held line at the next tick", (t) => {
    t.mock.timers.enable({ apis: ["setInterval"] });
    const dir = mkdtempSync(join(tmpdir(), "gateway-log-"));
    const path = join(dir, "log");
    const fd = openSync(path, "a");
    let writes = 0;
    t.mock.method(fs, "writeSync", function (this: unknown, ...args: Parameters<typeof fs.writeSync>) {
      if (args[0] === fd) writes++;
      return Reflect.apply(realWriteSync, this, args);
    });
    try {
      const destination = gatewayLogDestination(fd);
      for (let i = 0; i < 5; i++) t.mock.timers.tick(100);
      assert.equal(writes, 0, "an idle gateway makes no write at all (not even an empty one)");
      destination.write('{"msg":"lone"}\n');
      assert.equal(readFileSync(path, "utf8"), "", "a line below a write's minimum is held");
      t.mock.timers.tick(100);
      assert.equal(readFileSync(path, "utf8"), '{"msg":"lone"}\n', "and written at the next tick");
      assert.equal(writes, 1);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes what it holds when the process exits without flushing (a crash's exit)", async () => {
    const script = `import { gatewayLogDestination } from ${JSON.stringify(destinationModule)};
      gatewayLogDestination().write('{"msg":"held at exit"}\\n'); process.exit(3);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const [code] = (await once(child, "close")) as [number];
    assert.equal(code, 3);
    assert.equal(output, '{"msg":"held at exit"}\n');
  });
});
