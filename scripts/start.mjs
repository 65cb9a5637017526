// `npm start`: the whole control plane embedded on this machine. Starts one host's services and
// the gateway as child processes (data under ./data unless VPLANE_DATA_DIR says otherwise),
// waits until each reports healthy, prints where each listens, and stops them all on Ctrl-C.
// `npm start -- --host-only`: a further host's three services, without a gateway (register it
// with the first gateway: vplanectl hosts register).
//
// Process life: each service runs in its own process group, so the terminal's Ctrl-C reaches only
// npm and this script, and this script alone signals the services: one SIGTERM each, the gateway
// first (it calls the others), then the host services, each draining its calls before it exits.
// npm forwards the Ctrl-C it received too, so signals within a second count once; a later one
// forces (a second SIGTERM: the services cancel what is in flight). The services hold an IPC
// channel to this script and stop by themselves if it dies without a word (kill -9).
// The services write their log lines to the same terminal; the banner is one write, so no log
// line lands inside it.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { dialAddress, isHealthy, serviceCatalog } from "@vplane/deploy";

const root = fileURLToPath(new URL("..", import.meta.url));
const dataDir = resolve(process.env.VPLANE_DATA_DIR ?? "data");
mkdirSync(dataDir, { recursive: true });
const env = { ...process.env, VPLANE_DATA_DIR: dataDir };

const hostOnly = process.argv.includes("--host-only");
const unknown = process.argv.slice(2).filter((arg) => arg !== "--host-only");
if (unknown.length > 0) {
  console.error(`vplane: unknown argument(s) ${unknown.join(" ")}; npm start takes only --host-only`);
  process.exit(2);
}
const services = serviceCatalog
  .filter((s) => !hostOnly || s.kind !== "http")
  .map((s) => ({ ...s, address: env[s.addressVariable] || s.defaultAddress }));
for (const s of services) env[s.addressVariable] = s.address;
// The migration service moves the state of this host's device services.
const addressOf = (name) => dialAddress(services.find((s) => s.name === name).address);
env.VPLANE_MIGRATION_INTERRUPT_TARGET ??= addressOf("interrupt-controller");
env.VPLANE_MIGRATION_IOMMU_TARGET ??= addressOf("iommu");

/** Signals closer together than this are one (the terminal's and npm's copy of one Ctrl-C). */
const SAME_SIGNAL_MS = 1000;
const running = []; // { service, child, exited: Promise<code or signal>, signals: number } in start order
let stopping; // the stop in progress: { since, forced }

function start(service) {
  const child = spawn(process.execPath, [resolve(root, service.main)], {
    env,
    detached: true,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  exited.then((code) => {
    if (!stopping) {
      console.error(`vplane: ${service.name} exited (${code}); stopping everything`);
      void stopAll(1);
    }
  });
  running.push({ service, child, exited, signals: 0 });
  return child;
}

async function waitHealthy(s, child, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${s.name} exited with code ${child.exitCode}`);
    if (await isHealthy(s.kind, dialAddress(s.address))) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${s.name} did not become healthy within ${timeoutMs / 1000} s`);
}

/** Gateway first, then the host services: one SIGTERM each, each drained before the next. */
async function stopAll(code) {
  if (stopping) return;
  stopping = { since: Date.now(), forced: false };
  const codes = [];
  for (const entry of [...running].reverse()) {
    if (entry.signals === 0) signal(entry);
    codes.push(`${entry.service.name} ${await entry.exited}`);
  }
  console.error(`vplane: stopped (exit codes: ${codes.reverse().join(", ")})`);
  process.exit(code);
}

/** One SIGTERM to a service still running: the first drains it, a second cancels what is left. */
function signal(entry) {
  if (entry.child.exitCode !== null || entry.child.signalCode !== null) return;
  entry.signals += 1;
  entry.child.kill("SIGTERM");
}

function onSignal() {
  if (!stopping) return void stopAll(0);
  if (stopping.forced || Date.now() - stopping.since < SAME_SIGNAL_MS) return;
  stopping.forced = true;
  console.error("vplane: stopping now (in-flight calls are cancelled)");
  for (const entry of running) for (let sent = entry.signals; sent < 2; sent++) signal(entry);
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  for (const s of services) await waitHealthy(s, start(s));
} catch (error) {
  console.error(`vplane: ${error.message}`);
  void stopAll(1);
}
if (!stopping) {
  const lines = services.map(
    (s) => `  ${s.name.padEnd(22)} ${s.kind === "http" ? "http://" : "grpc://"}${s.address}`,
  );
  process.stdout.write(
    [
      "",
      "vplane is up (Ctrl-C stops everything):",
      ...lines,
      `  data folder            ${dataDir}`,
      "",
      "",
    ].join("\n"),
  );
}
