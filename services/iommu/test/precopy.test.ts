// Pre-copy through the iommu service (issue 14 points 1-2): each SMMU of the VM hands out what
// changed since the last read, the destination prepares each iteration durably while the source
// runs (hidden from the SMMU API), the stop moves the runtime state and the configuration
// changed since, and a cancelled or failed migration leaves nothing behind.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { deviceStateStreams } from "@vplane/service-kit/testing";
import { collect, startIommu, twoHosts, type IommuHarness } from "./iommu-harness.js";
import { createSmmu } from "./smmu-fixture.js";

const RAM = 64 * 1024 * 1024;
const RW = Stage2Permission.STAGE2_PERMISSION_READ_WRITE;
const guestMemory = (vm: string) => ({ path: `${vm}.ram`, sizeBytes: BigInt(RAM) });
const fields = (vm: string) => ({ guestMemory: guestMemory(vm), backend: Backend.BACKEND_UNSPECIFIED });
const streams = (h: IommuHarness) => deviceStateStreams(h.dsClient);
const bytesOf = (chunks: DeviceStateChunk[]) => chunks.reduce((n, c) => n + c.data.length, 0);

const hosts = twoHosts();

/** Two SMMUs of `vm` as a booted guest leaves them: identity stage 2 and one device each. */
async function boot(h: IommuHarness, vm: string): Promise<[string, string]> {
  const s0 = await createSmmu(h, vm, "s0", { guestMemory: guestMemory(vm), mapped: 0x100_0000 });
  const s1 = await createSmmu(h, vm, "s1", { guestMemory: guestMemory(vm), mapped: 0x100_0000 });
  for (const [name, streamId] of [
    [s0, 1],
    [s1, 2],
  ] as const)
    await h.call("attachDevice", {
      name,
      streamId,
      virtualStreamId: streamId,
      pageRequests: false,
      requestId: "",
    });
  return [s0, s1];
}

/** What an SMMU's configuration looks like to a guest and its VMM: the dump without caches. */
async function configOf(h: IommuHarness, name: string): Promise<unknown> {
  const dump = JSON.parse((await h.call("dumpSmmu", { name })).text) as Record<string, unknown>;
  delete dump.iotlb;
  return JSON.parse(
    JSON.stringify(dump, (k, v: unknown) => (k === "cachedContextDescriptors" ? undefined : v)),
  );
}

/** Nothing of `vm` on the destination: no SMMU, none after a restart either. */
async function assertNothingLeft(vm: string, names: string[]): Promise<void> {
  for (const name of names)
    assert.equal((await hosts.destination.failure("getSmmu", { name })).code, "NOT_FOUND");
  await hosts.destination.stop();
  hosts.destination = await startIommu(hosts.destination.dataDir);
  for (const name of names)
    assert.equal((await hosts.destination.failure("getSmmu", { name })).code, "NOT_FOUND");
  assert.equal((await hosts.destination.dsFailure("releaseDevices", { vm })).code, "NOT_FOUND");
}

/**
 * Finishes `vm`'s import with `stop` and checks that it opened nothing: the RAM file the
 * prepared SMMUs bound stays (RAM migration fills it in place), and its path made unusable
 * meanwhile would fail any opening (GUEST_MEMORY_UNAVAILABLE). The SMMUs then show the source's
 * configuration.
 */
async function finishOpeningNothing(vm: string, stop: DeviceStateChunk[], names: string[]): Promise<void> {
  const { source, destination } = hosts;
  const ram = join(destination.dataDir, `${vm}.ram`);
  renameSync(ram, `${ram}.bound`);
  mkdirSync(ram);
  assert.deepEqual(await streams(destination).finishImport(vm, stop, false, fields(vm)), names);
  rmSync(ram, { recursive: true });
  renameSync(`${ram}.bound`, ram);
  const hostLocal = (c: unknown) => ({ ...(c as object), vmid: undefined }); // each host picks its VMIDs
  for (const name of names)
    assert.deepEqual(hostLocal(await configOf(destination, name)), hostLocal(await configOf(source, name)));
}

describe("pre-copy through the iommu service (issue 14)", () => {
  it("mappings and devices changed before, between and after the iterations arrive exactly; the stop moves less than the whole state", async () => {
    const { source, destination } = hosts;
    const [s0, s1] = await boot(source, "vm-p");
    const mapping = { ipa: 0x2000_0000n, hostAddress: 0x200_0000n, size: 0x20_0000n, permission: RW };
    await source.call("mapStage2", { name: s0, mapping, requestId: "" });
    const initial = (await source.ds("getPreCopyInfo", { vm: "vm-p" })).info!.initialBytes;
    const it0 = await streams(source).readPreCopy("vm-p", 0);
    assert.equal(
      BigInt(bytesOf(it0)) > initial,
      true,
      "the first read holds both SMMUs (and the stream's framing)",
    );
    assert.deepEqual(await streams(destination).prepareImport("vm-p", 0, it0, fields("vm-p")), [s0, s1]);
    assert.equal(
      (await destination.failure("getSmmu", { name: s0 })).code,
      "NOT_FOUND",
      "prepared, not the VM's",
    );

    // Between iterations: another device on s1, s0's mapping replaced by another.
    await source.call("attachDevice", {
      name: s1,
      streamId: 3,
      virtualStreamId: 7,
      pageRequests: true,
      requestId: "",
    });
    await source.call("unmapStage2", { name: s0, ipa: 0x2000_0000n, size: 0x20_0000n, requestId: "" });
    const other = { ipa: 0x3000_0000n, hostAddress: 0x300_0000n, size: 0x10_0000n, permission: RW };
    await source.call("mapStage2", { name: s0, mapping: other, requestId: "" });
    assert.ok((await source.ds("getPreCopyInfo", { vm: "vm-p" })).info!.dirtyBytes > 0n);
    await streams(destination).prepareImport(
      "vm-p",
      1,
      await streams(source).readPreCopy("vm-p", 1),
      fields("vm-p"),
    );

    // After the last iteration: s0's device goes, a mapping comes; then the stop.
    await source.call("detachDevice", { name: s0, streamId: 1, requestId: "" });
    await source.call("mapStage2", { name: s1, mapping, requestId: "" });
    const stop = await streams(source).stopAndCopy("vm-p");
    const full = (await source.ds("exportDeviceState", { vm: "vm-p" })).sections;
    const fullBytes = full.reduce((n, s) => n + s.payload.length, 0);
    assert.ok(
      bytesOf(stop) < fullBytes,
      `the stop moved ${bytesOf(stop)} bytes, the whole state is ${fullBytes}`,
    );

    copyFileSync(join(source.dataDir, "vm-p.ram"), join(destination.dataDir, "vm-p.ram"));
    assert.deepEqual(await streams(destination).finishImport("vm-p", stop, false, fields("vm-p")), [s0, s1]);
    for (const name of [s0, s1])
      assert.deepEqual(await configOf(destination, name), await configOf(source, name));

    // Durable: a restarted destination rebuilds the same configuration.
    const expected = [await configOf(destination, s0), await configOf(destination, s1)];
    await destination.stop();
    hosts.destination = await startIommu(destination.dataDir);
    const restarted = [await configOf(hosts.destination, s0), await configOf(hosts.destination, s1)];
    const running = (c: unknown) => ({ ...(c as object), quiesced: undefined });
    assert.deepEqual(restarted.map(running), expected.map(running));
    await hosts.destination.ds("releaseDevices", { vm: "vm-p" });
  });

  it("a stop with nothing changed builds nothing in the downtime: the SMMUs and their RAM binding are the ones prepared", async () => {
    const { source, destination } = hosts;
    const [s0, s1] = await boot(source, "vm-b");
    await streams(destination).prepareImport(
      "vm-b",
      0,
      await streams(source).readPreCopy("vm-b", 0),
      fields("vm-b"),
    );
    const stop = await streams(source).stopAndCopy("vm-b");
    assert.equal(bytesOf(stop), 0, "an idle stop moves nothing");
    await finishOpeningNothing("vm-b", stop, [s0, s1]);
    await destination.ds("releaseDevices", { vm: "vm-b" });
  });

  it("a stop with changes applies them in place: nothing opened in the downtime, the source's configuration, durable, and its stream's sequence", async () => {
    const { source, destination } = hosts;
    const [s0, s1] = await boot(source, "vm-i");
    await streams(destination).prepareImport(
      "vm-i",
      0,
      await streams(source).readPreCopy("vm-i", 0),
      fields("vm-i"),
    );
    // After the last iteration: a stage-2 fault recorded and streamed (delivered count 1), a
    // device bound, another unbound, a mapping made.
    const fault = await source.call("translate", { name: s0, streamId: 1, iova: 0x9000_0000n, write: false });
    assert.equal(fault.event?.idName, "F_TRANSLATION");
    await source.call("attachDevice", {
      name: s0,
      streamId: 3,
      virtualStreamId: 7,
      pageRequests: true,
      requestId: "",
    });
    await source.call("detachDevice", { name: s1, streamId: 2, requestId: "" });
    const mapping = { ipa: 0x2000_0000n, hostAddress: 0x200_0000n, size: 0x20_0000n, permission: RW };
    await source.call("mapStage2", { name: s1, mapping, requestId: "" });
    const stop = await streams(source).stopAndCopy("vm-i");
    assert.ok(bytesOf(stop) > 0, "the stop moves the changes");
    await finishOpeningNothing("vm-i", stop, [s0, s1]);

    // The stream goes on from the source's sequence: its message 0 was streamed there.
    await destination.ds("resumeDevices", { vm: "vm-i" });
    const events = collect(destination.client, { name: s0, fromSequence: 1n });
    await destination.call("translate", { name: s0, streamId: 3, iova: 0x9000_0000n, write: false });
    assert.equal((await events.next(1))[0]?.sequence, 1n);
    events.cancel();

    // Durable: a restarted destination rebuilds the same configuration (the runtime state not).
    const configuration = (c: unknown) => ({ ...(c as object), events: undefined });
    const expected = [await configOf(destination, s0), await configOf(destination, s1)];
    await destination.stop();
    hosts.destination = await startIommu(destination.dataDir);
    for (const [i, name] of [s0, s1].entries())
      assert.deepEqual(configuration(await configOf(hosts.destination, name)), configuration(expected[i]));
    await hosts.destination.ds("releaseDevices", { vm: "vm-i" });
  });

  it("released after iteration 0 or a later one, or a restart while preparing: nothing left, store included", async () => {
    const { source } = hosts;
    const names = await boot(source, "vm-c");
    await streams(hosts.destination).prepareImport(
      "vm-c",
      0,
      await streams(source).readPreCopy("vm-c", 0),
      fields("vm-c"),
    );
    assert.deepEqual((await hosts.destination.ds("releaseDevices", { vm: "vm-c" })).devices, names);
    await assertNothingLeft("vm-c", names);

    await streams(hosts.destination).prepareImport(
      "vm-c",
      0,
      await streams(source).readPreCopy("vm-c", 0),
      fields("vm-c"),
    );
    await source.call("detachDevice", { name: names[0], streamId: 1, requestId: "" });
    await streams(hosts.destination).prepareImport(
      "vm-c",
      1,
      await streams(source).readPreCopy("vm-c", 1),
      fields("vm-c"),
    );
    await hosts.destination.ds("releaseDevices", { vm: "vm-c" });
    await assertNothingLeft("vm-c", names);

    await streams(hosts.destination).prepareImport(
      "vm-c",
      0,
      await streams(source).readPreCopy("vm-c", 0),
      fields("vm-c"),
    );
    await assertNothingLeft("vm-c", names); // the restart in it drops the prepared import
    await source.ds("resumeDevices", { vm: "vm-c" });
  });
});
