// The gateway process's operational log gathers its lines into few writes (http/log-destination.ts)
// but still writes each line: one held back (fewer bytes than a write's minimum) leaves within
// the flush interval without more lines behind it, and what is held when the process stops is
// written before it exits. Each line is one JSON object.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

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
