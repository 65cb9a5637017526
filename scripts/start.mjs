// `npm start`: the whole control plane embedded on this machine. Starts one host's services and
// the gateway as child processes (data under ./data unless VPLANE_DATA_DIR says otherwise),
// waits until each reports healthy, prints where each listens, and stops them all on Ctrl-C.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { service as healthDefinition } from "grpc-health-check";

const dataDir = resolve(process.env.VPLANE_DATA_DIR ?? "data");
mkdirSync(dataDir, { recursive: true });
const env = { ...process.env, VPLANE_DATA_DIR: dataDir };

const services = [
  {
    name: "interrupt-controller",
    kind: "grpc",
    variable: "VPLANE_INTERRUPT_ADDR",
    fallback: "127.0.0.1:50051",
  },
  { name: "iommu", kind: "grpc", variable: "VPLANE_IOMMU_ADDR", fallback: "127.0.0.1:50052" },
  { name: "migration", kind: "grpc", variable: "VPLANE_MIGRATION_ADDR", fallback: "127.0.0.1:50053" },
  { name: "gateway", kind: "http", variable: "VPLANE_GATEWAY_ADDR", fallback: "127.0.0.1:8080" },
].map((s) => ({ ...s, address: env[s.variable] || s.fallback }));
for (const s of services) env[s.variable] = s.address;

const Health = makeGenericClientConstructor(healthDefinition, "grpc.health.v1.Health");
const children = [];
let stopping = false;

function healthy(s) {
  if (s.kind === "http") {
    return fetch(`http://${s.address}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
  }
  return new Promise((done) => {
    const client = new Health(s.address, credentials.createInsecure());
    client.check({ service: "" }, { deadline: Date.now() + 1000 }, (error, response) => {
      client.close();
      done(!error && response.status === "SERVING");
    });
  });
}

async function waitHealthy(s, child, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${s.name} exited with code ${child.exitCode}`);
    if (await healthy(s)) return;
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
    const child = spawn(process.execPath, [`services/${s.name}/dist/src/main.js`], {
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
