// What a guest configures through its H_INT_* hypercalls is durable as the device calls are: the
// service killed outright (kill -9) and started again on its data folder answers as before.
// QEMU keeps what they set in its EAT and ENDT (hw/intc/spapr_xive.c h_int_set_source_config,
// h_int_set_queue_config, h_int_reset) and its post_load gives a fresh KVM device the EAT's END
// (hw/intc/spapr_xive_kvm.c kvmppc_xive_post_load); the restart makes the same calls again.
// Rules checked here:
// - H_INT_SET_QUEUE_CONFIG's queue (a 4 KiB queue without ALWAYS_NOTIFY, which KVM's EQ_CONFIG
//   alone refuses) and H_INT_SET_SOURCE_CONFIG's END, EISN and mask survive: H_INT_GET_*_CONFIG
//   answer as before and a trigger lands in that queue;
// - H_INT_RESET survives: no queue, every source masked;
// - QEMU's END of a source the device routes elsewhere (an import's requested_ends) survives:
//   H_INT_GET_SOURCE_CONFIG answers it, the device routes where KVM's selection puts it.
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ActiveMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { spawnServiceProcess } from "@vplane/service-kit/testing";
import { HcallOpcode, decodeControllerState, encodeControllerState, endIndexOf } from "@vplane/xive";
import { esb } from "./conformance-fixtures.js";
import { removeDir, tempDataDir, type Method, type ResponseOf } from "./service-harness.js";
import { startHost } from "./device-state-host.js";
import { RAM, bootXive, name } from "./xive-guest.js";

type RequestOf<M> = M extends Method<infer Req, infer _Res> ? Req : never;
function caller<C extends object>(client: C) {
  return <K extends keyof C>(method: K, request: RequestOf<C[K]>): Promise<ResponseOf<C[K]>> => {
    const fn = (client[method] as unknown as Method<unknown, unknown>).bind(client);
    return unaryCall(fn, request, { timeoutMs: 10_000 }) as Promise<ResponseOf<C[K]>>;
  };
}

/** The service as its own process (its entry point, as deployed) on `dataDir`. */
async function startProcess(dataDir: string) {
  const main = fileURLToPath(new URL("../src/main.js", import.meta.url));
  const child = await spawnServiceProcess(main, {
    VPLANE_DATA_DIR: dataDir,
    VPLANE_INTERRUPT_ADDR: "127.0.0.1:0",
  });
  const ic = new InterruptControllerServiceClient(child.listening, credentials.createInsecure());
  const ds = new DeviceStateServiceClient(child.listening, credentials.createInsecure());
  return {
    dataDir,
    ic: caller(ic),
    ds: caller(ds),
    /** kill -9: nothing is flushed or closed. */
    async crash() {
      await child.kill("SIGKILL");
      ic.close();
      ds.close();
    },
  };
}
type Process = Awaited<ReturnType<typeof startProcess>>;

const VM = "hc";
const hcall = async (host: Pick<Process, "ic">, opcode: number, args: bigint[]) => {
  const response = await host.ic("rawHypercall", {
    name: name(VM),
    server: 0,
    opcode: BigInt(opcode),
    args,
    failOnError: true,
  });
  return response.outputs;
};
const FOUR_K_QUEUE = 0x5_0000n;

describe("the guest's configuring hypercalls survive kill -9 and a restart", () => {
  it("H_INT_SET_QUEUE_CONFIG and H_INT_SET_SOURCE_CONFIG (END, EISN, mask) come back; then H_INT_RESET does", async () => {
    const dataDir = tempDataDir();
    let host = await startProcess(dataDir);
    try {
      await bootXive(host, VM); // vCPUs 0 and 1; queues (0, 6), (1, 5); 0x1300 → (0, 6), 0x1301 → (1, 5)
      await host.ic("selectMode", { name: name(VM), mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
      // vCPU 1's priority-5 queue replaced by a 4 KiB one without ALWAYS_NOTIFY; 0x1300 moved there
      // with EISN 0x99; 0x1301 masked, its EAS keeping END (0, 6) and EISN 0x55.
      await hcall(host, HcallOpcode.H_INT_SET_QUEUE_CONFIG, [0n, 1n, 5n, FOUR_K_QUEUE, 12n]);
      await hcall(host, HcallOpcode.H_INT_SET_SOURCE_CONFIG, [2n, 0x1300n, 1n, 5n, 0x99n]);
      await hcall(host, HcallOpcode.H_INT_SET_SOURCE_CONFIG, [3n, 0x1301n, 0n, 6n, 0x55n]);
      const seen = async (h: Process) => ({
        sources: [
          await hcall(h, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n]),
          await hcall(h, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, 0x1301n]),
        ],
        queue: await hcall(h, HcallOpcode.H_INT_GET_QUEUE_CONFIG, [0n, 1n, 5n]),
      });
      const before = await seen(host);
      assert.deepEqual(before, {
        sources: [
          [1n, 5n, 0x99n],
          [0n, 0xffn, 0x55n],
        ],
        queue: [0n, FOUR_K_QUEUE, 12n, 0n],
      });
      await host.crash();

      host = await startProcess(dataDir);
      assert.deepEqual(await seen(host), before);
      const routed = (await host.ic("getSourceConfig", { name: name(VM), irq: 0x1300 })).source!;
      assert.deepEqual([routed.server, routed.priority, routed.eisn], [1, 5, 0x99]);
      // PQ is runtime state (back to 01 after the restart): the guest's SET_PQ_00, then a trigger.
      await host.ic("esbAccess", esb(name(VM), 0x1300, 0xc00));
      const counts = await host.ic("triggerSources", { name: name(VM), irqs: [0x1300] });
      assert.equal(counts.delivered, 1);
      const queue = await host.ic("getQueueConfig", { name: name(VM), server: 1, priority: 5 });
      assert.deepEqual(
        [queue.queue!.qaddr, queue.queue!.qshift, queue.entriesWritten],
        [FOUR_K_QUEUE, 12, 1n],
      );

      await hcall(host, HcallOpcode.H_INT_RESET, [0n]);
      await host.crash();
      host = await startProcess(dataDir);
      const reset = (await host.ic("getSourceConfig", { name: name(VM), irq: 0x1300 })).source!;
      assert.deepEqual([reset.masked, reset.eisn], [true, 0]);
      for (const [server, priority] of [
        [0, 6],
        [1, 5],
      ] as const)
        assert.equal((await host.ic("getQueueConfig", { name: name(VM), server, priority })).hasPage, false);
    } finally {
      await host.crash();
      removeDir(dataDir);
    }
  });

  it("QEMU's END of a source an import routes elsewhere (requested_ends) comes back: GET_SOURCE_CONFIG answers it, the device routes as KVM selects", async () => {
    const origin = await startHost();
    const dataDir = tempDataDir();
    let host: Process | undefined;
    try {
      await bootXive(origin, VM);
      await origin.ic("selectMode", { name: name(VM), mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
      await origin.ds("quiesceDevices", { vm: VM });
      const [section] = (await origin.ds("exportDeviceState", { vm: VM })).sections;
      // What a native host exports after the guest asked for vCPU 1 at priority 6 (no queue there):
      // KVM kept 0x1300 on vCPU 0's queue, QEMU's EAT names (1, 6).
      const state = decodeControllerState(section!.payload);
      state.xive!.sources.find((s) => s.irq === 0x1300)!.requestedEnd = endIndexOf(1, 6);
      copyFileSync(join(origin.dataDir, `${VM}.ram`), join(dataDir, `${VM}.ram`));

      host = await startProcess(dataDir);
      await host.ds("importDeviceState", {
        vm: VM,
        sections: [{ ...section!, payload: Buffer.from(encodeControllerState(state)) }],
        guestMemory: { path: `${VM}.ram`, sizeBytes: RAM },
        requestId: "",
        backend: Backend.BACKEND_UNSPECIFIED,
      });
      await host.ds("resumeDevices", { vm: VM });
      // QEMU answers the target from its END's NVT: (1, 6) never had a queue, so 0 - 0x400.
      const answer = [0xffff_fc00n, 0n, 0x1300n];
      assert.deepEqual(await hcall(host, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n]), answer);
      await host.crash();

      host = await startProcess(dataDir);
      assert.deepEqual(await hcall(host, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, 0x1300n]), answer);
      const routed = (await host.ic("getSourceConfig", { name: name(VM), irq: 0x1300 })).source!;
      assert.deepEqual([routed.server, routed.priority], [0, 6], "no vCPU 1 queue: KVM picks vCPU 0");
      const dump = (await host.ic("dumpController", { name: name(VM) })).text;
      assert.match(dump, /^ {2}00001300 MSI .* routed 0\/6$/m);
    } finally {
      await host?.crash();
      await origin.stop();
      removeDir(origin.dataDir);
      removeDir(dataDir);
    }
  });
});
