// The DeviceStateService adapter of the service kit (issue 14): the pre-copy iterations follow one
// another (0 restarts, any other must be the next), a client stream's first message names the VM
// and carries the guest RAM for the stream, FinishImport answers only once the import is durable
// (its devices may resume before) and a VM's release waits for that, so a rollback never leaves
// the import behind.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import {
  ClientStreamCall,
  chunkDeviceState,
  deviceStateService,
  serverStreamCall,
  unaryCall,
  type ImportStream,
  type ServiceDescription,
  VplaneError,
} from "../src/index.js";
import { startService, type RunningService } from "../src/service-runner.js";
import { silentLog, testConfig } from "./support.js";

const log: string[] = [];
const prepared: { stream: ImportStream; iteration: number }[] = [];
/** The finish's durable write: settles when the test says. */
let finishing: Promise<void> = Promise.resolve();
const RESUMED_AT_US = 1_700_000_000_000_001n;

const description: ServiceDescription<Record<string, never>> = {
  name: "device-state",
  envPrefix: "ECHO",
  defaultPort: 0,
  options: {},
  start: ({ handlers }) =>
    Promise.resolve({
      services: [
        deviceStateService(handlers, {
          quiesceDevices: () => ({ dirtyPages: [], pageSize: 0n }),
          exportDeviceState: () => ({ sections: [] }),
          importDeviceState: () => ({ devices: [] }),
          resumeDevices: () => ({}),
          releaseDevices: ({ vm }) => {
            log.push(`release ${vm}`);
            return { devices: [] };
          },
          readPreCopy: (vm, iteration): DeviceSection[] => [
            { kind: "fake", device: vm, formatVersion: 1, payload: Buffer.from(`iteration ${iteration}`) },
          ],
          preCopyInfo: () => ({ initialBytes: 0n, dirtyBytes: 0n }),
          stopAndCopy: () => ({ sections: [], dirtyPages: [0n, 4096n], pageSize: 4096n, pausedAtUs: 42n }),
          prepareImport: (stream, iteration) => {
            prepared.push({ stream, iteration });
            return Promise.resolve([]);
          },
          finishImport: ({ vm }) => {
            log.push(`finish ${vm} resumed`);
            const durable = finishing.then(() => void log.push(`finish ${vm} durable`));
            return Promise.resolve({ devices: [vm], resumedAtUs: RESUMED_AT_US, durable });
          },
        }),
      ],
    }),
};

let service: RunningService;
let client: DeviceStateServiceClient;
before(async () => {
  service = await startService(description, testConfig(), silentLog);
  client = new DeviceStateServiceClient(service.server.address, credentials.createInsecure());
});
after(async () => {
  client.close();
  await service.stop(0);
});

async function read(vm: string, iteration: number) {
  const texts: string[] = [];
  for await (const { chunk } of serverStreamCall(client.readPreCopy.bind(client), { vm, iteration })) {
    assert.ok(chunk);
    texts.push(Buffer.from(chunk.data).toString("latin1"));
  }
  return texts;
}

describe("DeviceStateService adapter", () => {
  test("pre-copy iterations: 0 starts, the next follows, a skipped or unstarted one is refused", async () => {
    await assert.rejects(read("vm-a", 1), {
      code: "FAILED_PRECONDITION",
      reason: "PRECOPY_ITERATION_UNEXPECTED",
    });
    assert.equal((await read("vm-a", 0)).length, 1);
    await read("vm-a", 1);
    await assert.rejects(read("vm-a", 3), {
      code: "FAILED_PRECONDITION",
      reason: "PRECOPY_ITERATION_UNEXPECTED",
    });
    await read("vm-a", 0); // a new migration starts over
    await read("vm-a", 1);
    await unaryCall(client.resumeDevices.bind(client), { vm: "vm-a" }); // ends it
    await assert.rejects(read("vm-a", 2), { code: "FAILED_PRECONDITION" });
  });

  test("a prepare stream's first message names the VM, its guest RAM and backend; another VM's message is refused", async () => {
    const chunks = chunkDeviceState(
      [{ kind: "fake", device: "d", formatVersion: 1, payload: Buffer.alloc(5000, 7) }],
      2048,
    );
    const call = new ClientStreamCall(client.prepareImport.bind(client));
    for (const [i, chunk] of chunks.entries())
      await call.write({
        vm: "vm-b",
        iteration: 2,
        guestMemory: i === 0 ? { path: "ram", sizeBytes: 4096n } : undefined,
        backend: i === 0 ? Backend.BACKEND_NATIVE : Backend.BACKEND_UNSPECIFIED,
        chunk,
      });
    await call.finish();
    assert.equal(prepared.at(-1)?.iteration, 2);
    assert.deepEqual(prepared.at(-1)?.stream.guestMemory, { path: "ram", sizeBytes: 4096n });
    assert.equal(prepared.at(-1)?.stream.backend, Backend.BACKEND_NATIVE);
    assert.equal(prepared.at(-1)?.stream.sections[0]?.payload.length, 5000);

    const mixed = new ClientStreamCall(client.prepareImport.bind(client));
    await mixed.write({ vm: "vm-b", iteration: 0, guestMemory: undefined, backend: 0, chunk: chunks[0] });
    await mixed
      .write({ vm: "vm-c", iteration: 0, guestMemory: undefined, backend: 0, chunk: chunks[1] })
      .catch(() => undefined);
    await assert.rejects(mixed.finish(), { code: "INVALID_ARGUMENT", reason: "STREAM_OF_ANOTHER_VM" });
  });

  /** A FinishImport of `vm` with an empty stream, once its devices resumed: its answer, pending. */
  async function finish(vm: string) {
    const call = new ClientStreamCall(client.finishImport.bind(client));
    for (const chunk of chunkDeviceState([]))
      await call.write({ vm, resume: true, guestMemory: undefined, backend: 0, chunk });
    const answer = call.finish();
    answer.catch(() => undefined);
    while (!log.includes(`finish ${vm} resumed`)) await new Promise((r) => setTimeout(r, 2));
    return { answer };
  }

  test("FinishImport answers once the import is durable, with the resume's time; a release of the VM waits for it", async () => {
    log.length = 0;
    let durable!: () => void;
    finishing = new Promise<void>((resolve) => (durable = resolve));
    let answered = false;
    const answer = (await finish("vm-d")).answer.then((a) => ((answered = true), a));
    const released = unaryCall(client.releaseDevices.bind(client), { vm: "vm-d" });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(answered, false, "no answer while the write is not durable");
    durable();
    const [finished] = await Promise.all([answer, released]);
    assert.deepEqual(finished, { devices: ["vm-d"], resumedAtUs: RESUMED_AT_US });
    assert.deepEqual(log, ["finish vm-d resumed", "finish vm-d durable", "release vm-d"]);
  });

  test("FinishImport works on its stream at the last chunk, before the client half-closes it (the half-close is not waited for inside the downtime)", async () => {
    log.length = 0;
    const aborts = new AbortController(); // the stream never half-closed is cancelled at the end
    const call = new ClientStreamCall(client.finishImport.bind(client), { signal: aborts.signal });
    try {
      for (const chunk of chunkDeviceState([]))
        await call.write({ vm: "vm-g", resume: true, guestMemory: undefined, backend: 0, chunk });
      const resumed = async () => {
        while (!log.includes("finish vm-g resumed")) await new Promise((r) => setTimeout(r, 2));
      };
      const waited = await Promise.race([
        resumed().then(() => true),
        new Promise((r) => setTimeout(r, 2000)).then(() => false),
      ]);
      assert.ok(waited, "resumed while the stream is still open");
      assert.deepEqual(await call.finish(), { devices: ["vm-g"], resumedAtUs: RESUMED_AT_US });
    } finally {
      aborts.abort();
    }
  });

  test("FinishImport whose durable write fails answers that failure, after the resume", async () => {
    log.length = 0;
    finishing = Promise.reject(
      new VplaneError({ code: "UNAVAILABLE", reason: "STORE_UNAVAILABLE", message: "disk refused" }),
    );
    finishing.catch(() => undefined); // rejected before the finish takes it up
    await assert.rejects((await finish("vm-f")).answer, { code: "UNAVAILABLE", reason: "STORE_UNAVAILABLE" });
    finishing = Promise.resolve();
  });

  test("StopAndCopy: dirty pages as runs, in the first message", async () => {
    const messages = [];
    for await (const message of serverStreamCall(client.stopAndCopy.bind(client), {
      vm: "vm-e",
      destination: "h:1",
    }))
      messages.push(message);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0]!.dirtyPages, [{ address: 0n, count: 2n }]);
    assert.equal(messages[0]!.pageSize, 4096n);
    assert.equal(messages[0]!.pausedAtUs, 42n, "when the devices stopped, in the first message");
  });
});
