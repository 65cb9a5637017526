// `npm test`: every tier, in order, with the time each step took and one closing line counting
// the tests of every package ("N passed, N failed"). Steps: build (generates libs/proto), lint
// and typecheck (eslint, tsc, buf lint, prettier), then every package's tests (model,
// conformance, system and, through @vplane/deploy, the container tier).
import { spawn } from "node:child_process";

const steps = [
  ["build", ["turbo", "run", "build", "--output-logs=errors-only"]],
  ["lint + typecheck", ["turbo", "run", "lint", "typecheck", "--output-logs=errors-only"]],
  ["format check", ["prettier", "--check", "--log-level=warn", "."]],
  ["tests", ["turbo", "run", "test", "--concurrency=2", "--output-logs=full"]],
];

let passed = 0;
let failed = 0;
const started = Date.now();

function run(name, [command, ...args]) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    console.log(`\n=== ${name}: ${command} ${args.join(" ")}`);
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"], env: process.env });
    let pending = "";
    child.stdout.setEncoding("utf8"); // whole characters per chunk: "ℹ" is three bytes
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk);
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        // Node's test runner closes with "# pass N" (TAP) or "ℹ pass N" (spec, Node 24's default).
        const pass = /(?:#|ℹ) pass (\d+)\s*$/.exec(line);
        const fail = /(?:#|ℹ) fail (\d+)\s*$/.exec(line);
        if (pass) passed += Number(pass[1]);
        if (fail) failed += Number(fail[1]);
      }
    });
    child.on("exit", (code) => {
      console.log(
        `=== ${name}: ${code === 0 ? "ok" : `FAILED (exit ${code})`} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      resolve(code ?? 1);
    });
  });
}

let status = 0;
for (const [name, command] of steps) {
  status = await run(name, command);
  if (status !== 0) break;
}
console.log(
  `\nnpm test: ${status === 0 ? "ok" : "FAILED"} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
console.log(`${passed} passed, ${failed} failed`);
process.exit(status !== 0 || failed > 0 ? 1 : 0);
