import assert from "node:assert/strict";
import { truncateSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { RAM_BYTES, controllerSpec, esb, kvmConfig, routedXive } from "./conformance-fixtures.js";
import { failure, removeDir, startHarness, tempDataDir } from "./service-harness.js";

describe("durable configuration and controller resources", () => {
  it("a restarted service comes back with the acknowledged config; runtime state (PQ) does not survive", async () => {
    const dataDir = tempDataDir();
    try {
      let h = await startHarness(dataDir);
      const name = await routedXive(h, "durable");
      await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "" });
      await h.call("initSources", {
        name,
        sources: [{ irq: 0x1200, levelSensitive: true, asserted: false }],
        requestId: "",
      });
      await h.call("configureQueue", {
        name,
        server: 1,
        priority: 5,
        queue: { flags: 1, qshift: 16, qaddr: 0x30_0000n, qtoggle: 1, qindex: 0 },
        requestId: "",
      });
      await h.call("configureSources", {
        name,
        sources: [{ irq: 0x1200, kvmConfig: kvmConfig(1, 5, 0x77) }],
        requestId: "",
      });
      await h.call("esbAccess", esb(name, 0x1300, 0xc00)); // PQ 00: runtime state
      const dual = await h.call("createController", {
        controller: controllerSpec("dual", ControllerMode.CONTROLLER_MODE_DUAL),
        requestId: "",
      });
      await h.call("connectVcpu", { name: dual.controller!.name, vcpuId: 0, server: 0, requestId: "" });
      await h.call("selectMode", {
        name: dual.controller!.name,
        mode: ActiveMode.ACTIVE_MODE_XIVE,
        requestId: "",
      });
      await h.stop();

      h = await startHarness(dataDir);
      const controller = (await h.call("getController", { name })).controller!;
      assert.deepEqual(controller.connectedServers, [0, 1]);
      assert.equal(controller.sourceCount, 2);
      const lsi = (await h.call("getSourceConfig", { name, irq: 0x1200 })).source!;
      assert.deepEqual(
        [lsi.levelSensitive, lsi.masked, lsi.server, lsi.priority, lsi.eisn],
        [true, false, 1, 5, 0x77],
      );
      const msi = (await h.call("getSourceConfig", { name, irq: 0x1300 })).source!;
      assert.deepEqual([msi.masked, msi.server, msi.priority, msi.eisn, msi.pq], [false, 0, 6, 0x1300, 0b01]);
      assert.equal((await h.call("getQueueConfig", { name, server: 1, priority: 5 })).hasPage, true);
      assert.equal(
        (await h.call("getController", { name: "vms/dual/controller" })).controller!.activeMode,
        ActiveMode.ACTIVE_MODE_XIVE,
      );
      // CTRL RESET is acknowledged config too: after a restart the queues stay torn down.
      await h.call("resetController", { name, requestId: "" });
      await h.stop();
      h = await startHarness(dataDir);
      assert.equal((await h.call("getQueueConfig", { name, server: 1, priority: 5 })).hasPage, false);
      assert.equal((await h.call("getSourceConfig", { name, irq: 0x1200 })).source!.masked, true);
      await h.call("deleteController", { name, requestId: "" });
      await h.stop();
      h = await startHarness(dataDir);
      assert.equal((await failure(h.call("getController", { name }))).code, "NOT_FOUND");
      await h.stop();
    } finally {
      removeDir(dataDir);
    }
  });

  // A queue reset leaves the sources routed to it as they are (Linux book3s_xive_native.c
  // kvmppc_xive_native_set_queue_config touches no source). The restart replays EQ_CONFIG, then
  // SOURCE_CONFIG, as QEMU's post_load restores a KVM device: kvmppc_xive_select_target finds no
  // page on the asked queue (xive_try_pick_queue -ENXIO) and takes another vCPU's queue at the
  // same priority, else -EBUSY and the controller is not restored, naming the source.
  it("a restart moves a source whose queue lost its page to another vCPU's queue at its priority, as KVM's restore; none: not restored (EBUSY), the answer naming the source and its priority", async () => {
    const dataDir = tempDataDir();
    let h = await startHarness(dataDir);
    try {
      const name = await routedXive(h, "unpaged");
      await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "" });
      const queue = (server: number, qshift: number) =>
        h.call("configureQueue", {
          name,
          server,
          priority: 6,
          queue: { flags: 1, qshift, qaddr: qshift ? 0x30_0000n : 0n, qtoggle: 1, qindex: 0 },
          requestId: "",
        });
      await queue(1, 16);
      await h.call("configureSources", {
        name,
        sources: [{ irq: 0x1300, kvmConfig: kvmConfig(1, 6, 0x1300) }],
        requestId: "",
      });
      await queue(1, 0);
      const routed = async () => {
        const s = (await h.call("getSourceConfig", { name, irq: 0x1300 })).source!;
        return [s.masked, s.server, s.priority, s.eisn];
      };
      assert.deepEqual(await routed(), [false, 1, 6, 0x1300], "live, the source keeps its routing");
      await h.stop();
      h = await startHarness(dataDir);
      assert.deepEqual(await routed(), [false, 0, 6, 0x1300], "moved to vCPU 0's priority 6 queue");

      await queue(0, 0);
      await h.stop();
      h = await startHarness(dataDir);
      const refused = await failure(h.call("getController", { name }));
      assert.deepEqual([refused.code, refused.reason], ["FAILED_PRECONDITION", "CONTROLLER_NOT_RESTORED"]);
      // The answer names the source the restart could not place, where its record routes it and
      // the errno KVM gives, not only the live call's "no connected vCPU has a priority 6 queue".
      assert.match(
        refused.message,
        /source 4864 \(0x1300\), stored as routed to server 1 priority 6, could not be routed again: SOURCE_CONFIG answered EBUSY \(16\): no connected vCPU's priority 6 queue has a page/,
      );
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });

  it("a stored controller that cannot be rebuilt on start answers CONTROLLER_NOT_RESTORED, keeps its name taken and can be deleted", async () => {
    const dataDir = tempDataDir();
    let h = await startHarness(dataDir);
    try {
      await h.call("createController", {
        controller: controllerSpec("lost", ControllerMode.CONTROLLER_MODE_XIVE),
        requestId: "",
      });
      await h.stop();
      // The VM's RAM file changed size while the service was down: the controller cannot be remade.
      truncateSync(join(dataDir, "lost.ram"), 4096);
      h = await startHarness(dataDir);
      const name = "vms/lost/controller";
      for (const call of [
        h.call("getController", { name }),
        h.call("connectVcpu", { name, vcpuId: 0, server: 0, requestId: "" }),
      ]) {
        const refused = await failure(call);
        assert.deepEqual([refused.code, refused.reason], ["FAILED_PRECONDITION", "CONTROLLER_NOT_RESTORED"]);
        assert.match(refused.message, /GUEST_MEMORY_SIZE_MISMATCH|cannot open guest memory/);
      }
      const again = await failure(
        h.call("createController", {
          controller: controllerSpec("lost", ControllerMode.CONTROLLER_MODE_XIVE),
          requestId: "",
        }),
      );
      assert.equal(again.code, "ALREADY_EXISTS");
      await h.call("deleteController", { name, requestId: "" });
      assert.equal((await failure(h.call("getController", { name }))).code, "NOT_FOUND");
      await h.stop();
      // Deleted for good: the record left the store, and the name can be used again.
      h = await startHarness(dataDir);
      assert.equal((await failure(h.call("getController", { name }))).code, "NOT_FOUND");
      await h.call("createController", {
        controller: controllerSpec("lost", ControllerMode.CONTROLLER_MODE_XIVE, {
          guestMemory: { path: "lost-2.ram", sizeBytes: RAM_BYTES },
        }),
        requestId: "",
      });
    } finally {
      await h.stop();
      removeDir(dataDir);
    }
  });

  it("create / get / list (paged) / delete, ALREADY_EXISTS, request_id retries, limits and the native backend", async () => {
    const h = await startHarness(tempDataDir(), ["--max-controllers=3"]);
    try {
      const spec = (vm: string) => ({
        controller: controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XIVE, { guestMemory: undefined }),
        requestId: `create-${vm}`,
      });
      const a = await h.call("createController", spec("a"));
      assert.equal(a.controller!.name, "vms/a/controller");
      assert.deepEqual(
        await h.call("createController", spec("a")),
        a,
        "a retry with the same request_id returns the first result",
      );
      const dup = await failure(h.call("createController", { ...spec("a"), requestId: "other" }));
      assert.deepEqual([dup.code, dup.reason], ["ALREADY_EXISTS", "CONTROLLER_EXISTS"]);
      await h.call("createController", spec("b"));
      await h.call("createController", spec("c"));
      const full = await failure(h.call("createController", spec("d")));
      assert.deepEqual([full.code, full.reason], ["RESOURCE_EXHAUSTED", "TOO_MANY_CONTROLLERS"]);

      const first = await h.call("listControllers", { pageSize: 2, pageToken: "" });
      assert.deepEqual(
        first.controllers.map((c) => c.vm),
        ["a", "b"],
      );
      const second = await h.call("listControllers", { pageSize: 2, pageToken: first.nextPageToken });
      assert.deepEqual([second.controllers.map((c) => c.vm), second.nextPageToken], [["c"], ""]);

      await h.call("deleteController", { name: "vms/c/controller", requestId: "del-c" });
      await h.call("deleteController", { name: "vms/c/controller", requestId: "del-c" });
      assert.equal(
        (await failure(h.call("deleteController", { name: "vms/c/controller", requestId: "" }))).code,
        "NOT_FOUND",
      );
      assert.equal(
        (await failure(h.call("getController", { name: "vms/C/controller" }))).reason,
        "NAME_INVALID",
      );

      const native = await failure(
        h.call("createController", {
          controller: controllerSpec("n", ControllerMode.CONTROLLER_MODE_XIVE, {
            backend: Backend.BACKEND_NATIVE,
          }),
          requestId: "",
        }),
      );
      assert.equal(native.code, "FAILED_PRECONDITION");
      assert.match(
        native.reason,
        /^(KERNEL_CALLS_UNAVAILABLE|KVM_NOT_PRESENT|KVM_OPEN_FAILED|XIVE_CAPABILITY_ABSENT)$/,
      );

      const badRam = await failure(
        h.call("createController", {
          controller: controllerSpec("r", ControllerMode.CONTROLLER_MODE_XIVE, {
            guestMemory: { path: "r.ram", sizeBytes: 12345n },
          }),
          requestId: "",
        }),
      );
      assert.deepEqual([badRam.code, badRam.reason], ["INVALID_ARGUMENT", "GUEST_MEMORY_SIZE_INVALID"]);

      const name = "vms/a/controller";
      const tooMany = await failure(
        h.call("triggerSources", { name, irqs: new Array<number>(65537).fill(0x1300) }),
      );
      assert.deepEqual([tooMany.code, tooMany.reason], ["INVALID_ARGUMENT", "BATCH_TOO_LARGE"]);
      const empty = await failure(h.call("initSources", { name, sources: [], requestId: "" }));
      assert.equal(empty.reason, "BATCH_EMPTY");
      const caps = (await h.call("getCapabilities", {})).capabilities!;
      assert.equal(caps.limits["max_controllers"], 3n);
      assert.equal(caps.limits["max_sources"], 1048576n);
    } finally {
      await h.stop();
      removeDir(h.dataDir);
    }
  });

  it("a repeated request_id on a mutating call returns the first answer without a second effect", async () => {
    const h = await startHarness();
    try {
      const name = await routedXive(h, "idem");
      await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "connect-1" });
      const again = await h.call("connectVcpu", { name, vcpuId: 1, server: 1, requestId: "connect-1" });
      assert.deepEqual(again.controller!.connectedServers, [0, 1]);
      const reused = await failure(h.call("resetController", { name, requestId: "connect-1" }));
      assert.equal(reused.reason, "REQUEST_ID_REUSED");
    } finally {
      await h.stop();
      removeDir(h.dataDir);
    }
  });
});
