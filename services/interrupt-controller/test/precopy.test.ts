// Pre-copy through the interrupt-controller service (issue 14 points 1-2): the source hands out
// what changed since the last read, the destination prepares each iteration durably while the
// source runs (hidden from the controller API), the stop moves only runtime state and the
// configuration changed since, and a cancelled or failed migration leaves nothing behind.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { deviceStateStreams } from "@vplane/service-kit/testing";
import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { RtasCall } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { HcallOpcode } from "@vplane/xive";
import { controllerSpec, kvmConfig } from "./conformance-fixtures.js";
import { startHost, twoHosts, type Host } from "./device-state-host.js";
import { failure } from "./service-harness.js";
import {
  AFTER,
  BEFORE,
  RAM,
  STOPPED_ON_DESTINATION,
  STOPPED_ON_SOURCE,
  ROUTES,
  bootXive,
  name,
  observe,
  run,
  type Step,
} from "./xive-guest.js";

const guestMemory = (vm: string) => ({ path: `${vm}.ram`, sizeBytes: RAM });
const fields = (vm: string) => ({ guestMemory: guestMemory(vm), backend: Backend.BACKEND_UNSPECIFIED });
const streams = (host: Host) => deviceStateStreams(host.dsClient);
const readPreCopy = (host: Host, vm: string, iteration: number) => streams(host).readPreCopy(vm, iteration);
const stopAndCopy = (host: Host, vm: string) => streams(host).stopAndCopy(vm);
const prepare = (host: Host, vm: string, iteration: number, chunks: DeviceStateChunk[]) =>
  streams(host).prepareImport(vm, iteration, chunks, fields(vm));
const finish = (host: Host, vm: string, chunks: DeviceStateChunk[], resume: boolean) =>
  streams(host).finishImport(vm, chunks, resume, fields(vm));

const hcall = (name: string, server: number, opcode: number, args: bigint[] = []) => ({
  name,
  server,
  opcode: BigInt(opcode),
  args,
  failOnError: true,
});

const bytesOf = (chunks: DeviceStateChunk[]) => chunks.reduce((n, c) => n + c.data.length, 0);

/** Configuration the guest changes: a source re-routed (and its EISN), another masked. */
async function reconfigure(
  host: Host,
  vm: string,
  irq: number,
  server: number,
  priority: number,
  eisn: number,
) {
  await host.ic("configureSources", {
    name: name(vm),
    sources: [{ irq, kvmConfig: kvmConfig(server, priority, eisn) }],
    requestId: "",
  });
}

/** Nothing of `vm` on the host: no controller, none after a restart either. */
async function assertNothingLeft(hosts: { destination: Host }, vm: string): Promise<void> {
  assert.equal((await failure(hosts.destination.ic("getController", { name: name(vm) }))).code, "NOT_FOUND");
  await hosts.destination.stop();
  hosts.destination = await startHost(hosts.destination.dataDir);
  assert.equal((await failure(hosts.destination.ic("getController", { name: name(vm) }))).code, "NOT_FOUND");
  assert.deepEqual(
    (await hosts.destination.ic("listControllers", { pageSize: 0, pageToken: "" })).controllers,
    [],
  );
}

describe("pre-copy through the service: the guest continues exactly (XIVE)", () => {
  const hosts = twoHosts();
  const reconfigured: Step[] = [["trigger", 0x1301]];

  it("iterations carry what changed; the stop carries less than the whole state; the guest loses nothing", async () => {
    const { source, destination } = hosts;
    await bootXive(source, "vm-p");
    // Before the first iteration: steps and a re-route.
    await run(source, "vm-p", BEFORE);
    await reconfigure(source, "vm-p", 0x1301, 0, 6, 0x51);
    const info0 = await source.ds("getPreCopyInfo", { vm: "vm-p" });
    assert.ok(info0.info!.initialBytes > 0n, "the first listing is still to come");
    const it0 = await readPreCopy(source, "vm-p", 0);
    assert.deepEqual(await source.ds("getPreCopyInfo", { vm: "vm-p" }), {
      info: { initialBytes: 0n, dirtyBytes: 0n },
    });
    assert.deepEqual(await prepare(destination, "vm-p", 0, it0), [name("vm-p")]);
    // Prepared, not the VM's: the controller API does not see it.
    assert.equal((await failure(destination.ic("getController", { name: name("vm-p") }))).code, "NOT_FOUND");

    // Between iterations: the route goes back, a trigger lands.
    await reconfigure(source, "vm-p", 0x1301, 1, 5, 0x1301);
    await run(source, "vm-p", reconfigured);
    const dirty = (await source.ds("getPreCopyInfo", { vm: "vm-p" })).info!.dirtyBytes;
    assert.ok(dirty > 0n);
    const it1 = await readPreCopy(source, "vm-p", 1);
    assert.equal(BigInt(bytesOf(it1)) > dirty, true, "the chunk stream adds its framing to the delta");
    await prepare(destination, "vm-p", 1, it1);
    // An iteration with nothing changed carries nothing, and prepares nothing.
    const unchanged = await readPreCopy(source, "vm-p", 2);
    assert.equal(bytesOf(unchanged), 0);
    assert.deepEqual(await prepare(destination, "vm-p", 2, unchanged), []);

    // After the last iteration: an EOI; the devices stop and go on while stopped; then the stop.
    await run(source, "vm-p", [["eoi", 0x1301]]);
    await source.ds("quiesceDevices", { vm: "vm-p" });
    await run(source, "vm-p", STOPPED_ON_SOURCE);
    const stop = await stopAndCopy(source, "vm-p");
    const full = (await source.ds("exportDeviceState", { vm: "vm-p" })).sections[0]!.payload.length;
    assert.ok(bytesOf(stop) < full, `the stop moved ${bytesOf(stop)} bytes, the whole state is ${full}`);

    copyFileSync(join(source.dataDir, "vm-p.ram"), join(destination.dataDir, "vm-p.ram"));
    assert.deepEqual(await finish(destination, "vm-p", stop, false), [name("vm-p")]);
    await run(destination, "vm-p", STOPPED_ON_DESTINATION);
    await destination.ds("resumeDevices", { vm: "vm-p" });
    await run(destination, "vm-p", AFTER);

    await bootXive(source, "vm-ref");
    await run(source, "vm-ref", BEFORE);
    await reconfigure(source, "vm-ref", 0x1301, 0, 6, 0x51);
    await reconfigure(source, "vm-ref", 0x1301, 1, 5, 0x1301);
    await run(source, "vm-ref", [
      ...reconfigured,
      ["eoi", 0x1301],
      ...STOPPED_ON_SOURCE,
      ...STOPPED_ON_DESTINATION,
      ...AFTER,
    ]);
    assert.deepEqual(await observe(destination, "vm-p"), await observe(source, "vm-ref"));
  });

  it("the finished import is durable: a restarted destination rebuilds it from its first state and deltas", async () => {
    const before = await hosts.destination.ic("getSourceConfig", { name: name("vm-p"), irq: 0x1301 });
    await hosts.destination.stop();
    hosts.destination = await startHost(hosts.destination.dataDir);
    const after = await hosts.destination.ic("getSourceConfig", { name: name("vm-p"), irq: 0x1301 });
    assert.deepEqual(
      [after.source?.server, after.source?.priority, after.source?.eisn],
      [before.source?.server, before.source?.priority, before.source?.eisn],
    );
    assert.deepEqual([after.source?.server, after.source?.eisn], [1, 0x1301]);
  });
});

describe("pre-copy: the controller is built while the source runs (issue 14)", () => {
  const hosts = twoHosts();

  /**
   * Finishes `vm`'s import with `stop` (and resumes it) with the RAM path made unusable: the RAM
   * file the prepared controller bound stays (RAM migration fills it in place), so a finish that
   * opened or built anything would fail GUEST_MEMORY_UNAVAILABLE.
   */
  async function finishOpeningNothing(vm: string, stop: DeviceStateChunk[]): Promise<void> {
    const { source, destination } = hosts;
    const ram = join(destination.dataDir, `${vm}.ram`);
    copyFileSync(join(source.dataDir, `${vm}.ram`), ram);
    renameSync(ram, `${ram}.bound`);
    mkdirSync(ram);
    assert.deepEqual(await finish(destination, vm, stop, true), [name(vm)]);
    rmSync(ram, { recursive: true });
    renameSync(`${ram}.bound`, ram);
  }

  /**
   * Prepares `vm`, runs `afterLast` on the source, stops it (running `stopped` while stopped) and
   * finishes opening nothing. Then the guest goes on; it must continue exactly.
   */
  async function finishWithoutBuilding(vm: string, afterLast: Step[], stopped: Step[]): Promise<number> {
    const { source, destination } = hosts;
    await bootXive(source, vm);
    await run(source, vm, BEFORE);
    await prepare(destination, vm, 0, await readPreCopy(source, vm, 0));
    await run(source, vm, afterLast);
    await source.ds("quiesceDevices", { vm });
    await run(source, vm, stopped);
    const stop = await stopAndCopy(source, vm);
    await finishOpeningNothing(vm, stop);
    await run(destination, vm, AFTER);
    await bootXive(source, `${vm}-ref`);
    await run(source, `${vm}-ref`, [...BEFORE, ...afterLast, ...stopped, ...AFTER]);
    assert.deepEqual(await observe(destination, vm), await observe(source, `${vm}-ref`));
    return bytesOf(stop);
  }

  it("a stop with nothing changed builds nothing in the downtime: the controller is the one prepared", async () => {
    assert.equal(await finishWithoutBuilding("vm-b", [], []), 0, "an idle stop moves nothing");
  });

  it("a stop's delta (triggers, EOI, triggers while stopped) is applied in place: nothing built in the downtime", async () => {
    const moved = await finishWithoutBuilding("vm-d", [["eoi", 0x1301], ...BEFORE], STOPPED_ON_SOURCE);
    assert.ok(moved > 0, "the stop moved a delta");
  });
  it("a vCPU connected and a source initialised after the last iteration: applied in place, nothing built; durable", async () => {
    const { source, destination } = hosts;
    const vm = "vm-dl";
    const n = name(vm);
    await bootXive(source, vm);
    await prepare(destination, vm, 0, await readPreCopy(source, vm, 0));
    await source.ic("connectVcpu", { name: n, vcpuId: 2, server: 2, requestId: "" });
    await source.ic("initSources", {
      name: n,
      sources: [{ irq: 0x1310, levelSensitive: true, asserted: false }],
      requestId: "",
    });
    await source.ds("quiesceDevices", { vm });
    const stop = await stopAndCopy(source, vm);
    await finishOpeningNothing(vm, stop);
    const seen = async (host: Host) => {
      const { controller } = await host.ic("getController", { name: n });
      const { source: s } = await host.ic("getSourceConfig", { name: n, irq: 0x1310 });
      return [controller?.connectedServers, controller?.sourceCount, s?.levelSensitive];
    };
    const expected = [[0, 1, 2], ROUTES.length + 1, true];
    assert.deepEqual(await seen(source), expected);
    assert.deepEqual(await seen(destination), expected);
    await hosts.destination.stop();
    hosts.destination = await startHost(hosts.destination.dataDir);
    assert.deepEqual(await seen(hosts.destination), expected, "a restarted destination has them too");
  });

  it("a XICS stop's delta (set-xive, a delivery, a trigger while stopped) is applied in place: nothing built in the downtime", async () => {
    const { source, destination } = hosts;
    const vm = "vm-xd";
    const n = name(vm);
    const spec = controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XICS, {
      guestMemory: { path: `${vm}.ram`, sizeBytes: RAM },
    });
    await source.ic("createController", { controller: spec, requestId: "" });
    for (const server of [0, 1])
      await source.ic("connectVcpu", { name: n, vcpuId: server, server, requestId: "" });
    await source.ic("initSources", {
      name: n,
      sources: [0x1300, 0x1301].map((irq) => ({ irq, levelSensitive: false, asserted: false })),
      requestId: "",
    });
    const setXive = (irq: number, server: number, priority: number) =>
      source.ic("callRtas", { name: n, call: RtasCall.RTAS_CALL_SET_XIVE, irq, server, priority });
    await setXive(0x1300, 0, 5);
    for (const server of [0, 1])
      await source.ic("rawHypercall", hcall(n, server, HcallOpcode.H_CPPR, [0xffn]));
    await prepare(destination, vm, 0, await readPreCopy(source, vm, 0));
    // After the last iteration: 0x1301 routed to server 1 and delivered; 0x1300 triggered while stopped.
    await setXive(0x1301, 1, 4);
    await source.ic("triggerSources", { name: n, irqs: [0x1301] });
    await source.ds("quiesceDevices", { vm });
    await source.ic("triggerSources", { name: n, irqs: [0x1300] });
    const stop = await stopAndCopy(source, vm);
    assert.ok(bytesOf(stop) > 0, "the stop moved a delta");
    await finishOpeningNothing(vm, stop);
    await source.ds("resumeDevices", { vm });
    const ipoll = async (host: Host, server: number) =>
      (await host.ic("rawHypercall", hcall(n, 0, HcallOpcode.H_IPOLL, [BigInt(server)]))).outputs;
    assert.deepEqual(await ipoll(destination, 0), [0xff00_1300n, 0xffn], "the stopped trigger presented");
    for (const server of [0, 1])
      assert.deepEqual(await ipoll(destination, server), await ipoll(source, server));
  });
});

describe("pre-copy: a cancelled or failed migration leaves nothing on the destination", () => {
  const hosts = twoHosts();

  /** A source VM with its first iteration read, and the destination's prepared import of it. */
  async function prepared(vm: string): Promise<void> {
    await bootXive(hosts.source, vm);
    await prepare(hosts.destination, vm, 0, await readPreCopy(hosts.source, vm, 0));
  }

  it("released after iteration 0: nothing left, durable records included", async () => {
    await prepared("vm-c0");
    assert.deepEqual((await hosts.destination.ds("releaseDevices", { vm: "vm-c0" })).devices, [
      name("vm-c0"),
    ]);
    await assertNothingLeft(hosts, "vm-c0");
    await hosts.source.ds("resumeDevices", { vm: "vm-c0" });
  });

  it("released after a later iteration: nothing left", async () => {
    await prepared("vm-c1");
    await run(hosts.source, "vm-c1", [["trigger", 0x1300]]);
    await prepare(hosts.destination, "vm-c1", 1, await readPreCopy(hosts.source, "vm-c1", 1));
    await hosts.destination.ds("releaseDevices", { vm: "vm-c1" });
    await assertNothingLeft(hosts, "vm-c1");
  });

  it("a refused stop delta leaves the prepared import as it was; a release then leaves nothing", async () => {
    await prepared("vm-c2");
    await run(hosts.source, "vm-c2", [["trigger", 0x1300]]);
    const stop = await stopAndCopy(hosts.source, "vm-c2");
    assert.ok(bytesOf(stop) > 0);
    const damaged = stop.map((c) => ({ ...c, data: Buffer.from(c.data).fill(0xff, 4, 8) }));
    const refused = await failure(finish(hosts.destination, "vm-c2", damaged, true));
    assert.equal(refused.code, "DATA_LOSS", "a chunk whose CRC fails refuses the stream whole");
    assert.deepEqual(await finish(hosts.destination, "vm-c2", stop, true), [name("vm-c2")]);
    await hosts.destination.ds("releaseDevices", { vm: "vm-c2" });
    await assertNothingLeft(hosts, "vm-c2");
  });

  it("a restart drops an import still being prepared", async () => {
    await prepared("vm-c4");
    await assertNothingLeft(hosts, "vm-c4");
    // The source goes on: its pre-copy ends when it resumes.
    await hosts.source.ds("resumeDevices", { vm: "vm-c4" });
    const again = await failure(readPreCopy(hosts.source, "vm-c4", 1));
    assert.deepEqual([again.code, again.reason], ["FAILED_PRECONDITION", "PRECOPY_ITERATION_UNEXPECTED"]);
  });

  it("iteration n without iteration 0 is FAILED_PRECONDITION; a second VM with the same id is ALREADY_EXISTS", async () => {
    await bootXive(hosts.source, "vm-c5");
    await readPreCopy(hosts.source, "vm-c5", 0);
    await run(hosts.source, "vm-c5", [["trigger", 0x1300]]);
    const orphan = await failure(
      prepare(hosts.destination, "vm-c5", 1, await readPreCopy(hosts.source, "vm-c5", 1)),
    );
    assert.deepEqual([orphan.code, orphan.reason], ["FAILED_PRECONDITION", "PRECOPY_NOT_PREPARED"]);
    await bootXive(hosts.destination, "vm-c5");
    const exists = await failure(
      prepare(hosts.destination, "vm-c5", 0, await readPreCopy(hosts.source, "vm-c5", 0)),
    );
    assert.deepEqual([exists.code, exists.reason], ["ALREADY_EXISTS", "CONTROLLER_EXISTS"]);
  });
});
