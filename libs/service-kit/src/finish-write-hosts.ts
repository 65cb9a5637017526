// Test support (issue 14): a live migration's two hosts of one device service in this process,
// for tests of the finish's store write, which the destination makes after its devices resume.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { listAll, openStore, type Store } from "@vplane/store";
import { deviceStateHandlers, type VmDevices } from "./device-state-handlers.js";
import type { ImportStream } from "./device-state-service.js";
import { failingWrites } from "./failing-writes.js";
import { createLogger, type Logger } from "./logger.js";
import type { VplaneError } from "./vplane-error.js";

/** What a device service's registry offers these tests. */
interface Registry {
  load(): Promise<void>;
  closeAll(): void;
  /** Throws NOT_FOUND when the VM has no devices here. */
  requireVm(vm: string): unknown;
}

/**
 * The source's registry on its own store and the destination's on one whose writes can fail (a
 * second registry over it is the service restarted), with their DeviceStateService handlers and
 * a shared data folder; all closed after the enclosing describe.
 */
export function finishWriteHosts<R extends Registry>(
  service: string,
  open: (store: Store, options: { dataDir: string; log: Logger }) => R,
  vmDevices: (registry: R, dataDir: string) => VmDevices,
) {
  const dataDir = mkdtempSync(join(tmpdir(), "vplane-finish-write-"));
  const log = createLogger({ name: "test", level: "silent" });
  const sourceStore = openStore("sqlite::memory:");
  const failing = failingWrites(openStore("sqlite::memory:"));
  const source = open(sourceStore, { dataDir, log });
  const destination = open(failing.store, { dataDir, log });
  const handlersOf = (registry: R) => deviceStateHandlers(vmDevices(registry, dataDir), service);
  const hosts = {
    dataDir,
    failing,
    source,
    destination,
    src: handlersOf(source),
    dst: handlersOf(destination),
    /** The destination's service restarted: its registry loaded again from the store. */
    async restarted(): Promise<R> {
      const registry = open(failing.store, { dataDir, log });
      await registry.load();
      return registry;
    },
    /**
     * Finishes `stream` on the destination with its write failing: the devices resume first,
     * and the write waits for the end of that turn of the event loop (where another device
     * service of this process resumes too), then FinishImport's answer is UNAVAILABLE
     * STORE_UNAVAILABLE (the source keeps the VM).
     */
    async finishFailing(stream: ImportStream): Promise<void> {
      failing.failNext();
      const finished = await hosts.dst.finishImport(stream, true);
      assert.ok(finished.resumedAtUs > 0n, "resumed before the write");
      assert.equal(failing.failuresLeft, 1, "nothing written in the turn of the resume");
      const refused = (await finished.durable.then(
        () => assert.fail("the finish was made durable"),
        (e: unknown) => e,
      )) as VplaneError;
      assert.deepEqual([refused.code, refused.reason], ["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    },
    /**
     * The rule's two cases, with `finish` (a VM's devices resumed on the destination, their write
     * failed: finishFailing): the release a failed migration makes leaves nothing, store
     * included; a restart before it drops the records still preparing.
     */
    cases(finish: (vm: string) => Promise<void>): void {
      it("the release the failed migration makes leaves nothing, store included", async () => {
        await finish("vm-w1");
        assert.ok((await hosts.dst.releaseDevices({ vm: "vm-w1" })).devices.length > 0);
        assert.throws(() => destination.requireVm("vm-w1"), { code: "NOT_FOUND" });
        const left = (await listAll(failing.store, "")).filter((e) => e.key.includes("vm-w1"));
        assert.deepEqual(left, [], "no record of the VM in the store");
      });
      it("a restart before the release drops the records still preparing", async () => {
        await finish("vm-w2");
        const restarted = await hosts.restarted();
        assert.throws(() => restarted.requireVm("vm-w2"), { code: "NOT_FOUND" });
        restarted.closeAll();
        await hosts.dst.releaseDevices({ vm: "vm-w2" });
      });
    },
  };
  after(async () => {
    source.closeAll();
    destination.closeAll();
    await sourceStore.close();
    await failing.store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return hosts;
}
