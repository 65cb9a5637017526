import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readSync } from "node:fs";
import { get } from "node:http";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { ActiveMode, ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, EsbPage } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";
import { HcallOpcode, SourceConfigFlag, encodeKvmSourceConfig } from "@vplane/xive";
import { report } from "@vplane/kernel-tier-runner/guest";
import { observeCall } from "./observe.js";

const VM = "moving";
const NAME = `vms/${VM}/controller`;
const RAM_FILE = "moving.ram";
const RAM_BYTES = 1n << 20n;
/** One queue per vCPU (single escalation): vCPU 0 priority 6, vCPU 1 priority 5, 64 KiB each. */
const QUEUES = [
  { server: 0, priority: 6, qaddr: 0x1_0000n },
  { server: 1, priority: 5, qaddr: 0x2_0000n },
];
/** MSIs: two routed to each queue's vCPU, the third masked. */
const ROUTES = [
  { irq: 0x1300, server: 0, priority: 6, masked: false },
  { irq: 0x1301, server: 1, priority: 5, masked: false },
  { irq: 0x1302, server: 0, priority: 6, masked: true },
];
/**
 * Routed by the guest's H_INT_SET_SOURCE_CONFIG to vCPU 1 at priority 6, where vCPU 1 has no
 * queue: the kernel routes it to vCPU 0's priority-6 queue, QEMU's EAT keeps (1, 6).
 */
const MOVED = 0x1303;
const ESB_EOI = 0x000;
const ESB_SET_PQ_00 = 0xc00;

type Method<Req, Res> = (
  request: Req,
  metadata: never,
  options: never,
  callback: (error: Error | null, response: Res) => void,
) => unknown;
type RequestOf<M> = M extends Method<infer Req, infer _Res> ? Req : never;
type ResponseOf<M> = M extends Method<infer _Req, infer Res> ? Res : never;

/** Typed unary calls by method name on a ts-proto grpc-js client (deadline: the emulated CPU is slow). */
function caller<C extends object>(client: C) {
  return <K extends keyof C>(method: K, request: RequestOf<C[K]>) => {
    const fn = (client[method] as unknown as Method<unknown, unknown>).bind(client);
    return unaryCall<RequestOf<C[K]>, ResponseOf<C[K]>>(fn as never, request, { timeoutMs: 60_000 });
  };
}

/**
 * The interrupt-controller service as a host runs it (interruptControllerDescription over gRPC),
 * its records in etcd. One instance plays both hosts: each start costs about a minute of the
 * emulated CPU (the reflection index of the whole API), and a host's own export, release and
 * import are the calls a migration makes on two.
 */
async function startHost() {
  const dataDir = "/tmp/host";
  const service: ServiceUnderTest = await startServiceForTests(interruptControllerDescription, {
    VPLANE_DATA_DIR: dataDir,
    VPLANE_INTERRUPT_STORE_URL: "etcd://127.0.0.1:2379/host",
  });
  const ic = new InterruptControllerServiceClient(service.address, credentials.createInsecure());
  const ds = new DeviceStateServiceClient(service.address, credentials.createInsecure());
  return {
    ramPath: join(dataDir, RAM_FILE),
    ic: caller(ic),
    ds: caller(ds),
    async stop() {
      ic.close();
      ds.close();
      await service.stop(1000);
    },
  };
}
type Host = Awaited<ReturnType<typeof startHost>>;

/** etcd on loopback with its data in tmpfs; resolves once /health answers. */
async function startEtcd(): Promise<ChildProcess> {
  const etcd = spawn(
    "/bin/etcd",
    [
      ...["--data-dir", "/tmp/etcd", "--listen-peer-urls", "http://127.0.0.1:2380"],
      ...[
        "--listen-client-urls",
        "http://127.0.0.1:2379",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
      ],
    ],
    { stdio: "ignore" },
  );
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const healthy = await new Promise<boolean>((resolve) => {
      get("http://127.0.0.1:2379/health", (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      }).once("error", () => resolve(false));
    });
    if (healthy) return etcd;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  etcd.kill();
  throw new Error("etcd did not answer /health within 120 s");
}

async function bootController(host: Host, backend: Backend): Promise<void> {
  await host.ic("createController", {
    controller: {
      name: "",
      vm: VM,
      mode: ControllerMode.CONTROLLER_MODE_XIVE,
      activeMode: ActiveMode.ACTIVE_MODE_UNSPECIFIED,
      nrServers: 2,
      backend,
      guestMemory: { path: RAM_FILE, sizeBytes: RAM_BYTES },
      connectedServers: [],
      sourceCount: 0,
      createTime: undefined,
    },
    requestId: "",
  });
  for (const server of [0, 1])
    await host.ic("connectVcpu", { name: NAME, vcpuId: server, server, requestId: "" });
  await host.ic("initSources", {
    name: NAME,
    sources: ROUTES.map(({ irq }) => ({ irq, levelSensitive: false, asserted: false })),
    requestId: "",
  });
  for (const q of QUEUES) {
    await host.ic("configureQueue", {
      name: NAME,
      server: q.server,
      priority: q.priority,
      queue: { flags: 1, qshift: 16, qaddr: q.qaddr, qtoggle: 1, qindex: 0 },
      requestId: "",
    });
  }
  await host.ic("configureSources", {
    name: NAME,
    sources: ROUTES.map(({ irq, server, priority, masked }) => ({
      irq,
      kvmConfig: encodeKvmSourceConfig({ server, priority, eisn: irq, masked }),
    })),
    requestId: "",
  });
  for (const { irq } of ROUTES) await esbLoad(host, irq, ESB_SET_PQ_00);
  await host.ic("selectMode", { name: NAME, mode: ActiveMode.ACTIVE_MODE_XIVE, requestId: "" });
  await host.ic("initSources", {
    name: NAME,
    sources: [{ irq: MOVED, levelSensitive: false, asserted: false }],
    requestId: "",
  });
  const args = [SourceConfigFlag.SET_EISN, BigInt(MOVED), 1n, 6n, BigInt(MOVED)];
  await hcall(host, HcallOpcode.H_INT_SET_SOURCE_CONFIG, args);
  await esbLoad(host, MOVED, ESB_SET_PQ_00);
}

const hcall = async (host: Host, opcode: number, args: bigint[]) =>
  (await host.ic("rawHypercall", { name: NAME, server: 0, opcode: BigInt(opcode), args, failOnError: true }))
    .outputs;

/**
 * QEMU's answer for MOVED (its EAT's END) and where the device routes it (a running controller),
 * with the kernel's count of the warnings a SOURCE_CONFIG to a vCPU whose queue has no page
 * prints (book3s_xive.c xive_try_pick_queue, WARN_ON(!q->qpage)) so far: which END the
 * kernel was given.
 */
async function movedSource(host: Host) {
  const answer = await hcall(host, HcallOpcode.H_INT_GET_SOURCE_CONFIG, [0n, BigInt(MOVED)]);
  const { server, priority } = (await host.ic("getSourceConfig", { name: NAME, irq: MOVED })).source!;
  const pickWarnings = execFileSync("dmesg", { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes("WARNING") && line.includes("xive_try_pick_queue")).length;
  return { answer: answer.map(String), routed: [server, priority], pickWarnings };
}

const esbLoad = (host: Host, irq: number, offset: number) =>
  host.ic("esbAccess", {
    name: NAME,
    irq,
    page: EsbPage.ESB_PAGE_MANAGEMENT,
    offset,
    size: 8,
    kind: AccessKind.ACCESS_KIND_LOAD,
    value: 0n,
  });

/** The first 4 words of each queue page in the host's RAM file (big-endian, as the guest reads them). */
function queueWords(host: Host): string[][] {
  const fd = openSync(host.ramPath, "r");
  try {
    return QUEUES.map(({ qaddr }) => {
      const bytes = Buffer.alloc(16);
      readSync(fd, bytes, 0, 16, Number(qaddr));
      return [0, 4, 8, 12].map((at) => bytes.readUInt32BE(at).toString(16));
    });
  } finally {
    closeSync(fd);
  }
}

/** Everything the guest and the next host see of the controller (through the service only). */
async function snapshot(host: Host) {
  const sources = [];
  for (const { irq } of ROUTES) {
    const s = (await host.ic("getSourceConfig", { name: NAME, irq })).source!;
    sources.push({ irq, pq: s.pq, masked: s.masked, server: s.server, priority: s.priority, eisn: s.eisn });
  }
  const queues = [];
  for (const q of QUEUES) {
    const { hasPage, queue } = await host.ic("getQueueConfig", {
      name: NAME,
      server: q.server,
      priority: q.priority,
    });
    queues.push({
      hasPage,
      qindex: queue?.qindex,
      qtoggle: queue?.qtoggle,
      qaddr: queue?.qaddr.toString(16),
    });
  }
  const vps = [];
  for (const server of [0, 1])
    vps.push((await host.ic("getVpState", { name: NAME, server })).word0.toString(16));
  const { controller } = await host.ic("getController", { name: NAME });
  return { backend: Backend[controller!.backend], sources, queues, vps, words: queueWords(host) };
}

/**
 * Quiesce and export the controller, release it (the source host's last call), import the state
 * into `backend` (the destination's). The RAM file stays where it is: the guest's RAM, which a
 * migration copies page by page, is the same file here.
 */
async function migrate(host: Host, backend: Backend): Promise<void> {
  await host.ds("quiesceDevices", { vm: VM });
  const { sections } = await host.ds("exportDeviceState", { vm: VM });
  await host.ds("releaseDevices", { vm: VM });
  await host.ds("importDeviceState", {
    vm: VM,
    sections,
    guestMemory: { path: RAM_FILE, sizeBytes: RAM_BYTES },
    requestId: "",
    backend,
  });
}

/**
 * A controller with pending interrupts migrated through the interrupt-controller service itself
 * (gRPC, DeviceStateService) from the KVM XIVE device to the model and back: before the move,
 * 0x1300 has an event in queue 0/6 and a coalesced second trigger (PQ 11), 0x1301 an event in
 * queue 1/5 (PQ 10), the masked 0x1302 a latched trigger (PQ 10). After each import the
 * destination resumes and an EOI of a source with Q set re-fires it into the next queue slot,
 * written by the model, then by the kernel. MOVED, which the guest asked for on vCPU 1 at priority
 * 6 (no queue there), goes with it: after each move QEMU's END and the routing are as before, and
 * last its trigger lands in vCPU 0's queue, written by the kernel given QEMU's END by the
 * restore; then the service restarts, and the same holds on the device its records rebuild. Observations: "service: ..."; "service-timing"
 * reports say where the guest's time went.
 */
export async function serviceMigrationScenario(): Promise<void> {
  const t0 = Date.now();
  const timing = (step: string) => report("service-timing", { step, ms: Date.now() - t0 });
  const etcd = await startEtcd();
  timing("etcd answers");
  let host: Host | undefined;
  try {
    const h = (host = await startHost());
    timing("service started");
    await observeCall("service: capabilities", async () =>
      (await h.ic("getCapabilities", {})).capabilities?.backends.map((x) => [
        Backend[x.backend],
        x.available,
      ]),
    );
    await observeCall("service: boot (NATIVE)", () => bootController(h, Backend.BACKEND_NATIVE));
    await observeCall("service: triggers", async () => {
      const counts = [];
      for (const irq of [0x1300, 0x1300, 0x1301, 0x1302])
        counts.push(await h.ic("triggerSources", { name: NAME, irqs: [irq] }));
      return counts;
    });
    await observeCall("service: NATIVE running", () => snapshot(h));
    await observeCall("service: moved source, NATIVE running", () => movedSource(h));
    await observeCall("service: NATIVE quiesced", async () => {
      await h.ds("quiesceDevices", { vm: VM });
      return snapshot(h);
    });
    await observeCall("service: NATIVE to EMULATED", () => migrate(h, Backend.BACKEND_EMULATED));
    await observeCall("service: EMULATED imported", () => snapshot(h));
    await observeCall("service: EMULATED resumed, EOI 0x1300", async () => {
      await h.ds("resumeDevices", { vm: VM });
      return (await esbLoad(h, 0x1300, ESB_EOI)).value;
    });
    await observeCall("service: EMULATED after the EOI", () => snapshot(h));
    await observeCall("service: moved source, EMULATED after the EOI", () => movedSource(h));
    await observeCall("service: EMULATED quiesced", async () => {
      await h.ds("quiesceDevices", { vm: VM });
      return snapshot(h);
    });
    await observeCall("service: EMULATED to NATIVE", () => migrate(h, Backend.BACKEND_NATIVE));
    await observeCall("service: NATIVE imported", () => snapshot(h));
    await observeCall("service: NATIVE resumed, trigger and EOI 0x1301", async () => {
      await h.ds("resumeDevices", { vm: VM });
      const counts = await h.ic("triggerSources", { name: NAME, irqs: [0x1301] });
      return { counts, eoi: (await esbLoad(h, 0x1301, ESB_EOI)).value };
    });
    await observeCall("service: NATIVE after the EOI", () => snapshot(h));
    await observeCall("service: moved source, NATIVE after the EOI", () => movedSource(h));
    await observeCall("service: NATIVE trigger of the moved source", async () => {
      const counts = await h.ic("triggerSources", { name: NAME, irqs: [MOVED] });
      return { delivered: counts.delivered, words: queueWords(h) };
    });
    // The service stops and starts again on its records (etcd): the NATIVE controller is rebuilt
    // on a fresh KVM device from the imported state and the records after it.
    await h.stop();
    host = undefined;
    const restarted = (host = await startHost());
    timing("service restarted");
    await observeCall("service: moved source, NATIVE restarted", () => movedSource(restarted));
    await observeCall("service: NATIVE restarted, trigger of the moved source", async () => {
      await esbLoad(restarted, MOVED, ESB_SET_PQ_00); // PQ is runtime state: 01 after the restart
      const counts = await restarted.ic("triggerSources", { name: NAME, irqs: [MOVED] });
      return { delivered: counts.delivered, words: queueWords(restarted) };
    });
    timing("scenario done");
  } finally {
    await host?.stop();
    etcd.kill();
  }
}
