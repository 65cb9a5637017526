// `npm start`: the whole control plane embedded on this machine. Starts one host's services and
// the gateway as child processes (data under ./data unless VPLANE_DATA_DIR says otherwise),
// waits until each reports healthy, prints where each listens, and stops them all on Ctrl-C.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { dialAddress, isHealthy, serviceCatalog } from "@vplane/deploy";

const dataDir = resolve(process.env.VPLANE_DATA_DIR ?? "data");
mkdirSync(dataDir, { recursive: true });
const env = { ...process.env, VPLANE_DATA_DIR: dataDir };

const services = serviceCatalog.map((s) => ({ ...s, address: env[s.addressVariable] || s.defaultAddress }));
for (const s of services) env[s.addressVariable] = s.address;
// The migration service moves the state of this host's device services.
const addressOf = (name) => dialAddress(services.find((s) => s.name === name).address);
env.VPLANE_MIGRATION_INTERRUPT_TARGET ??= addressOf("interrupt-controller");
env.VPLANE_MIGRATION_IOMMU_TARGET ??= addressOf("iommu");

const children = [];
let stopping = false;

async function waitHealthy(s, child, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${s.name} exited with code ${child.exitCode}`);
    if (await isHealthy(s.kind, dialAddress(s.address))) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${s.name} did not become healthy within ${timeoutMs / 1000} s`);
}

function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : null))).then(
    () => process.exit(code),
  );
}
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

try {
  for (const s of services) {
    const child = spawn(process.execPath, [s.main], {
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    children.push(child);
    child.once("exit", (code) => {
      if (!stopping) {
        console.error(`vplane: ${s.name} exited (code ${code}); stopping everything`);
        stopAll(1);
      }
    });
    await waitHealthy(s, child);
  }
} catch (error) {
  console.error(`vplane: ${error.message}`);
  stopAll(1);
}
if (!stopping) {
  console.log("\nvplane is up (Ctrl-C stops everything):");
  for (const s of services)
    console.log(`  ${s.name.padEnd(22)} ${s.kind === "http" ? "http://" : "grpc://"}${s.address}`);
  console.log(`  data folder            ${dataDir}\n`);
}
