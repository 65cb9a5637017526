// vplanectl's resource verbs (hosts, vms, operations, migrate, api) run as a process against an
// embedded gateway with the real services of two hosts, through REST only.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startEmbeddedStack, type EmbeddedStack } from "./embedded-stack.js";

describe("vplanectl against an embedded gateway", () => {
  let stack: EmbeddedStack;
  let dataDir: string;
  let token: string;
  let gateway: EmbeddedStack["gateway"];
  let remote: EmbeddedStack["remote"];
  const cli = (args: string[], env?: Record<string, string>) => stack.cli(args, env);

  before(async () => {
    stack = await startEmbeddedStack({ remoteHost: true });
    ({ dataDir, token, gateway, remote } = stack);
  });
  after(() => stack?.stop());

  it("lists the default host registered from the services' addresses, with its health", async () => {
    const { code, stdout } = await cli(["hosts", "list"]);
    assert.equal(code, 0);
    assert.match(stdout, /^NAME\s+VMS\s+VCPUS\s+SMMUS\s+INTERRUPT\s+IOMMU\s+MIGRATION/);
    assert.match(stdout, /\nlocal\s+0\s+0\/-\s+0\/-\s/);
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
    // Its host's list row counts it: 1 VM, 2 vCPUs, 1 SMMU (used/capacity, "-": no limit).
    const hosts = await cli(["hosts", "list"]);
    assert.match(hosts.stdout, /\nlocal\s+1\s+2\/-\s+1\/-\s/);
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

  it("api: any route, raw, its answer as JSON", async () => {
    const { code, stdout } = await cli(["api", "get", "/v1/vms/web-1"]);
    assert.equal(code, 0);
    assert.equal((JSON.parse(stdout) as { name: string }).name, "web-1");
    assert.equal((await cli(["api", "post", "/v1/vms", "--data", "{not json"])).code, 2);
    // A queue for the migrate test to find on the VM's new host.
    assert.equal((await cli(["vcpus", "connect", "web-1", "--vcpu", "0"])).code, 0);
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
  });

  it("-o yaml prints the same answer as YAML", async () => {
    const { code, stdout } = await cli(["vms", "get", "web-1", "-o", "yaml"]);
    assert.equal(code, 0);
    assert.match(stdout, /^name: web-1$/m);
    assert.match(stdout, /^state: READY$/m);
    assert.doesNotMatch(stdout, /[{}]/, "YAML, not JSON");
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

  it("calls the gateway through the generated client: a VM id with a slash stays one encoded path parameter (400 naming vm, not 404 ROUTE_NOT_FOUND)", async () => {
    const { code, stderr } = await cli(["vms", "get", "a/b"]);
    assert.equal(code, 1);
    assert.match(stderr, /^error: INVALID_ARGUMENT SCHEMA_VALIDATION_FAILED: .* \(field=vm\)\n$/);
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
