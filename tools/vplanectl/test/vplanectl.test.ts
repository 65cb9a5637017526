// vplanectl run as a process against an embedded gateway (started in this process with the real
// interrupt-controller, iommu and migration services as its default host), through REST only.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import pino from "pino";
import { gatewayOptionsSpec, startGateway, type RunningGateway } from "@vplane/gateway";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { migrationDescription } from "@vplane/migration";
import { loadConfig } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";

const run = promisify(execFile);
const MAIN = new URL("../src/main.js", import.meta.url).pathname;

describe("vplanectl against an embedded gateway", () => {
  let dataDir: string;
  let services: ServiceUnderTest[];
  let remote: ServiceUnderTest[];
  let gateway: RunningGateway;
  let token = "";

  /** Runs vplanectl; resolves with its exit code and output, never rejects on a non-zero exit. */
  async function cli(
    args: string[],
    env: Record<string, string> = { VPLANE_URL: gateway.url, VPLANE_TOKEN: token },
  ) {
    try {
      const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], {
        env: { PATH: process.env.PATH ?? "", HOME: dataDir, ...env },
        timeout: 30_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  /** One host's services sharing `dir`, the migration service pointed at the other two. */
  async function startHost(dir: string): Promise<ServiceUnderTest[]> {
    mkdirSync(dir, { recursive: true });
    const env = { VPLANE_DATA_DIR: dir };
    const interrupt = await startServiceForTests(interruptControllerDescription, env);
    const iommu = await startServiceForTests(iommuDescription, env);
    const migration = await startServiceForTests(migrationDescription, {
      ...env,
      VPLANE_MIGRATION_INTERRUPT_TARGET: interrupt.address,
      VPLANE_MIGRATION_IOMMU_TARGET: iommu.address,
    });
    return [interrupt, iommu, migration];
  }

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "vplanectl-test-"));
    services = await startHost(dataDir);
    // A second host for `vplanectl migrate`, registered through the CLI in that test.
    remote = await startHost(join(dataDir, "remote"));
    const config = loadConfig(gatewayOptionsSpec, {
      argv: [],
      env: {
        VPLANE_DATA_DIR: join(dataDir, "gateway"),
        VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
        VPLANE_INTERRUPT_ADDR: services[0]!.address,
        VPLANE_IOMMU_ADDR: services[1]!.address,
        VPLANE_MIGRATION_ADDR: services[2]!.address,
      },
    });
    gateway = await startGateway(config, pino({ level: "silent" }), { onAdminToken: (t) => (token = t) });
  });
  after(async () => {
    await gateway?.close();
    for (const service of [...(services ?? []), ...(remote ?? [])]) await service.stop(500);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("lists the default host registered from the services' addresses, with its health", async () => {
    const { code, stdout } = await cli(["hosts", "list"]);
    assert.equal(code, 0);
    assert.match(stdout, /^NAME\s+VMS\s+VCPUS\s+INTERRUPT\s+IOMMU\s+MIGRATION/);
    assert.match(stdout, /\nlocal\s+0\s+0\/-/);
    const got = await cli(["hosts", "get", "local", "-o", "json"]);
    const host = JSON.parse(got.stdout) as { services: Record<string, { health: string }> };
    assert.equal(host.services["interruptController"]?.health, "SERVING");
  });

  it("creates a VM with --wait: a progress bar on stderr, the finished operation on stdout", async () => {
    const { code, stdout, stderr } = await cli([
      "vms",
      "create",
      "--name",
      "web-1",
      "--vcpus",
      "2",
      "--memory",
      "64MiB",
      "--mode",
      "xive",
      "--nr-servers",
      "4",
      "--smmu",
      "s0=8:0",
      "--wait",
      "-o",
      "json",
    ]);
    assert.equal(code, 0, stderr);
    const operation = JSON.parse(stdout) as { done: boolean; metadata: { state: string } };
    assert.deepEqual([operation.done, operation.metadata.state], [true, "SUCCEEDED"]);
    assert.match(stderr, /\[#{30}\] 100% succeeded/);
  });

  it("lists and gets VMs as a table or JSON", async () => {
    const table = await cli(["vms", "list"]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^NAME\s+STATE\s+HOST\s+VCPUS\s+MEMORY\s+MODE\s+BACKEND\s+SMMUS\n/);
    assert.match(table.stdout, /\nweb-1\s+READY\s+local\s+2\s+64MiB\s+xive\s+emulated\s+s0\n/);
    const json = await cli(["vms", "get", "web-1", "--output", "json"]);
    const vm = JSON.parse(json.stdout) as { name: string; iommu: { smmus: { devices: unknown[] }[] } };
    assert.equal(vm.name, "web-1");
    assert.deepEqual(vm.iommu.smmus[0]?.devices, [{ physicalSid: 8, virtualSid: 0 }]);
  });

  it("configures a queue and a source and triggers it through the device endpoints", async () => {
    assert.equal(
      (await cli(["api", "post", "/v1/vms/web-1/vcpus/connect", "--data", '{"vcpuId":0,"server":0}'])).code,
      0,
    );
    assert.equal(
      (await cli(["api", "post", "/v1/vms/web-1/sources/init", "--data", '{"sources":[{"irq":10}]}'])).code,
      0,
    );
    const queue = await cli([
      "queues",
      "configure",
      "web-1",
      "--server",
      "0",
      "--priority",
      "6",
      "--qaddr",
      "0x100000",
    ]);
    assert.equal(queue.code, 0, queue.stderr);
    const source = await cli([
      "sources",
      "configure",
      "web-1",
      "--irq",
      "10",
      "--server",
      "0",
      "--priority",
      "6",
      "--eisn",
      "66",
      "-o",
      "json",
    ]);
    assert.equal(source.code, 0, source.stderr);
    assert.deepEqual(JSON.parse(source.stdout), { effectiveServers: [0] });
    const got = await cli(["sources", "get", "web-1", "10", "-o", "json"]);
    assert.equal((JSON.parse(got.stdout) as { source: { eisn: number } }).source.eisn, 66);
    const trigger = await cli(["trigger", "web-1", "--irq", "10", "-o", "json"]);
    assert.equal(trigger.code, 0, trigger.stderr);
    assert.ok("delivered" in (JSON.parse(trigger.stdout) as object));
    const queueState = await cli(["queues", "get", "web-1", "0", "6", "-o", "json"]);
    assert.equal((JSON.parse(queueState.stdout) as { queue: { qshift: number } }).queue.qshift, 16);
  });

  it("API errors exit 1 with CODE REASON: message on stderr", async () => {
    const { code, stderr, stdout } = await cli(["vms", "get", "nope"]);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(stderr, "error: NOT_FOUND VM_NOT_FOUND: no VM 'nope'\n");
    const bad = await cli([
      "vms",
      "create",
      "--name",
      "Bad",
      "--vcpus",
      "1",
      "--memory",
      "1MiB",
      "--mode",
      "xive",
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: INVALID_ARGUMENT SCHEMA_VALIDATION_FAILED: .* \(field=name\)\n$/);
    const unauthenticated = await cli(["vms", "list"], { VPLANE_URL: gateway.url });
    assert.equal(unauthenticated.code, 1);
    assert.match(unauthenticated.stderr, /UNAUTHENTICATED TOKEN_MISSING/);
  });

  it("usage errors exit 2", async () => {
    assert.equal((await cli(["vms", "frobnicate"])).code, 2);
    assert.equal((await cli(["vms", "list", "--no-such-flag"])).code, 2);
    assert.equal((await cli(["vms", "list", "--output", "yaml"])).code, 2);
    assert.equal((await cli([])).code, 2);
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^vplanectl: /);
  });

  it("reads url, token and output from a config file; flags beat the environment", async () => {
    const file = join(dataDir, "vplanectl.json");
    writeFileSync(file, JSON.stringify({ url: gateway.url, token, output: "json" }));
    const fromFile = await cli(["vms", "list", "--config", file], {});
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.ok(Array.isArray((JSON.parse(fromFile.stdout) as { vms: unknown[] }).vms));
    const flagWins = await cli(["vms", "list", "--token", token, "-o", "table"], {
      VPLANE_URL: gateway.url,
      VPLANE_TOKEN: "vpl_bad",
    });
    assert.equal(flagWins.code, 0, flagWins.stderr);
    assert.match(flagWins.stdout, /^NAME/);
    const missingFile = await cli(["vms", "list", "--config", join(dataDir, "none.json")], {});
    assert.equal(missingFile.code, 2);
  });

  it("migrate: to a second host with a progress bar (RAM copied), back with --no-wait then watched; refusals exit 1, bad usage 2", async () => {
    const [interrupt, iommu, migration] = remote.map((service) => service.address);
    const registered = await cli([
      "hosts",
      "register",
      "--name",
      "remote",
      "--interrupt-addr",
      interrupt!,
      "--iommu-addr",
      iommu!,
      "--migration-addr",
      migration!,
    ]);
    assert.equal(registered.code, 0, registered.stderr);

    const moved = await cli(["migrate", "web-1", "--to", "remote", "--downtime-limit-ms", "60000"]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /^NAME\s+KIND\s+VM\s+STATE/);
    assert.match(moved.stdout, /\smigrate\s+web-1\s+SUCCEEDED\s+100%/);
    // The bar follows the migration's phases; its last line says it completed and its downtime.
    assert.match(moved.stderr, /running copying_ram ram [\d.]+MiB\/64\.0MiB/);
    assert.match(
      moved.stderr,
      /\[#{30}\] 100% succeeded completed ram 64\.0MiB\/64\.0MiB \d+ms downtime \d+ms/,
    );
    const vm = JSON.parse((await cli(["vms", "get", "web-1", "-o", "json"])).stdout) as { host: string };
    assert.equal(vm.host, "remote");
    const queue = await cli(["queues", "get", "web-1", "0", "6", "-o", "json"]);
    assert.equal(queue.code, 0, `the device endpoints reach the VM on its new host: ${queue.stderr}`);

    const same = await cli(["migrate", "web-1", "--to", "remote"]);
    assert.equal(same.code, 1);
    assert.match(
      same.stderr,
      /^error: INVALID_ARGUMENT DESTINATION_IS_SOURCE: .* \(field=destinationHost\)\n$/,
    );
    assert.equal((await cli(["migrate", "web-1"])).code, 2, "--to is required");
    assert.equal((await cli(["migrate", "web-1", "--to", "local", "--downtime-limit-ms", "soon"])).code, 2);

    const started = await cli([
      "migrate",
      "web-1",
      "--to",
      "local",
      "--vmm-moves-ram",
      "--no-wait",
      "-o",
      "json",
    ]);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stderr, "", "no progress bar with --no-wait");
    const operation = JSON.parse(started.stdout) as { name: string; metadata: { kind: string } };
    assert.equal(operation.metadata.kind, "migrate");
    const watched = await cli(["operations", "watch", operation.name, "-o", "json"]);
    assert.equal(watched.code, 0, watched.stderr);
    const done = JSON.parse(watched.stdout) as {
      metadata: { state: string; migration: { ramBytesTotal: number; vmmMovesRam: boolean } };
    };
    assert.equal(done.metadata.state, "SUCCEEDED");
    assert.deepEqual([done.metadata.migration.ramBytesTotal, done.metadata.migration.vmmMovesRam], [0, true]);
    const back = JSON.parse((await cli(["vms", "get", "web-1", "-o", "json"])).stdout) as { host: string };
    assert.equal(back.host, "local");
  });

  it("deletes without waiting, then watches and cancels the operation by name", async () => {
    const started = await cli(["vms", "delete", "web-1", "-o", "json"]);
    assert.equal(started.code, 0, started.stderr);
    const name = (JSON.parse(started.stdout) as { name: string }).name;
    const watched = await cli(["operations", "watch", name, "-o", "json"]);
    assert.equal(watched.code, 0, watched.stderr);
    assert.equal((JSON.parse(watched.stdout) as { metadata: { state: string } }).metadata.state, "SUCCEEDED");
    const cancelled = await cli(["operations", "cancel", name.replace("operations/", ""), "-o", "json"]);
    assert.equal(cancelled.code, 0);
    assert.equal(
      (JSON.parse(cancelled.stdout) as { metadata: { state: string } }).metadata.state,
      "SUCCEEDED",
      "a finished operation stays as it ended",
    );
    const list = await cli(["operations", "list"]);
    assert.match(list.stdout, new RegExp(`${name}\\s+delete\\s+web-1\\s+SUCCEEDED`));
    assert.equal((await cli(["vms", "get", "web-1"])).code, 1);
  });
});
