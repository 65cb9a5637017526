// `npm start` (scripts/start.mjs) as a person uses it: the stack comes up and prints its banner in
// one piece; one Ctrl-C (which reaches start.mjs twice: from the terminal and forwarded by npm)
// makes every service receive exactly one signal, drain and log that it stopped, and start.mjs
// exits 0; start.mjs killed outright leaves no service behind.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { serviceCatalog } from "../src/index.js";
import { freePort } from "./free-port.js";

const START = fileURLToPath(new URL("../../../scripts/start.mjs", import.meta.url));
const NAMES = serviceCatalog.map((s) => s.name);

interface LogLine {
  service?: string;
  msg?: string;
  outcome?: string;
}

/** Starts start.mjs on free ports; resolves once its banner is out. */
async function startStack(dataDir: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, VPLANE_DATA_DIR: dataDir, VPLANE_LOG_LEVEL: "info" };
  for (const s of serviceCatalog) env[s.addressVariable] = `127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, [START], { env, stdio: ["ignore", "pipe", "pipe"] });
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const until = Date.now() + 90_000;
  while (!output.stdout.includes("data folder")) {
    if (child.exitCode !== null || Date.now() > until)
      throw new Error(`start.mjs did not come up:\n${output.stdout}\n${output.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, output, exited };
}

const logLines = (stdout: string): LogLine[] =>
  stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);

/** The processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ")".
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("npm start (scripts/start.mjs)", { timeout: 180_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), "vplane-start-"));
  const started: ChildProcess[] = [];
  after(() => {
    for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints the banner in one piece; one Ctrl-C: one signal per service, each drains and logs that it stopped", async () => {
    const { child, output, exited } = await startStack(join(dataDir, "a"));
    started.push(child);
    const lines = output.stdout.split("\n");
    const top = lines.indexOf("vplane is up (Ctrl-C stops everything):");
    assert.ok(top > 0, output.stdout);
    const banner = lines.slice(top + 1, top + 1 + NAMES.length + 1);
    assert.deepEqual(
      banner.map((line) => line.trim().split(/\s+/)[0]),
      [...NAMES, "data"],
      `the banner's lines follow each other, no log line between them:\n${output.stdout}`,
    );
    // A Ctrl-C under npm: the terminal's SIGINT and the copy npm forwards, a moment apart.
    child.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill("SIGINT");
    assert.equal(await exited, 0, output.stderr);
    const logs = logLines(output.stdout);
    for (const name of NAMES) {
      const own = logs.filter((l) => l.service === name);
      assert.equal(own.filter((l) => /signal received/.test(l.msg ?? "")).length, 1, `${name}: one signal`);
      const stopped = own.filter((l) => l.msg === "stopped");
      assert.equal(stopped.length, 1, `${name} logs that it stopped`);
      if (name !== "gateway") assert.equal(stopped[0]?.outcome, "graceful", `${name} drained`);
    }
    assert.match(
      output.stderr,
      new RegExp(`vplane: stopped \\(exit codes: ${NAMES.map((n) => `${n} 0`).join(", ")}\\)`),
    );
  });

  it("start.mjs killed with SIGKILL: the services notice and stop by themselves", async () => {
    const { child, exited } = await startStack(join(dataDir, "b"));
    started.push(child);
    const pids = childrenOf(child.pid!);
    assert.equal(pids.length, NAMES.length, `one process per service: ${pids.join(", ")}`);
    child.kill("SIGKILL");
    await exited;
    const until = Date.now() + 30_000;
    while (pids.some(alive) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(pids.filter(alive), [], "no service outlives start.mjs");
  });
});
