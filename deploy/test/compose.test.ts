// docker-compose.yml itself, brought up by Debian's docker-compose (v1): every container turns
// healthy through the image's HEALTHCHECK and depends_on ordering, the gateway, a service and the
// host services' metrics answer from the host on loopback, and `down -v` leaves nothing behind.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { freePort } from "./free-port.js";
import { isHealthy } from "../src/health-probe.js";
import { serviceCatalog } from "../src/service-catalog.js";
import { buildVplaneImage, containerTier, repoRoot } from "./container-runtime.js";

const { skip, missing } = await containerTier(["docker-compose"]);
const project = `vplane-compose-test-${process.pid}`;
// The published ports docker-compose.yml lets VPLANE_<NAME>_PORT move (free ones here).
const SERVICE_PORTS = ["GATEWAY", "INTERRUPT", "IOMMU", "MIGRATION"];
const METRICS_PORTS = ["INTERRUPT_METRICS", "IOMMU_METRICS", "MIGRATION_METRICS"];
const ports: Record<string, number> = {};
let env: NodeJS.ProcessEnv = {};

function compose(...args: string[]) {
  const result = spawnSync("docker-compose", ["-p", project, ...args], {
    cwd: repoRoot,
    env,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`docker-compose ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

function healthOf(containerId: string): string {
  const inspected = spawnSync("docker", ["inspect", "--format", "{{.State.Health.Status}}", containerId], {
    encoding: "utf8",
  });
  return inspected.stdout.trim();
}

before(
  async () => {
    if (skip) return;
    if (missing) throw new Error(`CI=true and ${missing}`);
    await buildVplaneImage("vplane-compose-test:latest");
    for (const name of [...SERVICE_PORTS, ...METRICS_PORTS]) ports[name] = await freePort();
    env = {
      ...process.env,
      VPLANE_IMAGE: "vplane-compose-test:latest",
      ...Object.fromEntries(
        Object.entries(ports).map(([name, port]) => [`VPLANE_${name}_PORT`, String(port)]),
      ),
    };
    compose("up", "-d", "--no-build");
  },
  { timeout: 600_000 },
);

after(() => {
  if (!skip && !missing) compose("down", "-v", "--remove-orphans", "--timeout", "15");
});

test(
  "every compose service becomes healthy (gateway after the services it depends on)",
  { skip },
  async () => {
    const ids = compose("ps", "-q").trim().split("\n").filter(Boolean);
    assert.equal(ids.length, serviceCatalog.length);
    // At least the image's HEALTHCHECK start period (120 s): within it a failing check is forgiven.
    const started = Date.now();
    const until = started + 240_000;
    let statuses: string[] = [];
    while (Date.now() < until) {
      statuses = ids.map(healthOf);
      if (statuses.every((s) => s === "healthy")) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    console.error(
      `container tier: compose services ${statuses.join(", ")} after ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.deepEqual(
      statuses,
      ids.map(() => "healthy"),
    );
  },
);

test(
  "the gateway and the interrupt controller answer on their published loopback ports",
  { skip },
  async () => {
    assert.equal(await isHealthy("http", `127.0.0.1:${ports.GATEWAY}`, 5000), true);
    assert.equal(await isHealthy("grpc", `127.0.0.1:${ports.INTERRUPT}`, 5000), true);
  },
);

test("each host service serves Prometheus metrics on its published loopback port", { skip }, async () => {
  for (const name of METRICS_PORTS) {
    const response = await fetch(`http://127.0.0.1:${ports[name]}/metrics`);
    assert.equal(response.status, 200, name);
    assert.match(await response.text(), /^process_resident_memory_bytes \d+/m, name);
  }
});

test("down -v removes the containers and the volumes", { skip }, () => {
  compose("down", "-v", "--remove-orphans", "--timeout", "15");
  assert.equal(compose("ps", "-q").trim(), "");
  const volumes = spawnSync("docker", ["volume", "ls", "-q", "--filter", `name=${project}`], {
    encoding: "utf8",
  });
  assert.equal(volumes.stdout.trim(), "");
});
