// A booted XIVE guest driven through the service's API, for the migration tests: its
// configuration, the steps it and its devices take, and what it can observe.
import { join } from "node:path";
import { FileGuestMemory } from "@vplane/guest-memory";
import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { OS_PAGE, controllerSpec, esb, kvmConfig, tima } from "./conformance-fixtures.js";
import type { Host } from "./device-state-host.js";

export const RAM = 1024n * 1024n;
export const QUEUES = [
  { server: 0, priority: 6, qaddr: 0x1_0000n },
  { server: 1, priority: 5, qaddr: 0x2_0000n },
];
export const ROUTES: [irq: number, server: number, priority: number, lsi: boolean][] = [
  [0x1300, 0, 6, false],
  [0x1301, 1, 5, false],
  [0x1200, 0, 6, true],
];
export const name = (vm: string) => `vms/${vm}/controller`;

/** A XIVE controller as a booted guest leaves it: 2 vCPUs, 2 queues, 3 sources routed, PQ 00, CPPR 0xFF. */
export async function bootXive(host: Pick<Host, "ic">, vm: string): Promise<void> {
  const n = name(vm);
  const spec = controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XIVE, {
    guestMemory: { path: `${vm}.ram`, sizeBytes: RAM },
  });
  await host.ic("createController", { controller: spec, requestId: "" });
  for (const server of [0, 1])
    await host.ic("connectVcpu", { name: n, vcpuId: server, server, requestId: "" });
  await host.ic("initSources", {
    name: n,
    sources: ROUTES.map(([irq, , , lsi]) => ({ irq, levelSensitive: lsi, asserted: false })),
    requestId: "",
  });
  for (const q of QUEUES) {
    await host.ic("configureQueue", {
      name: n,
      server: q.server,
      priority: q.priority,
      queue: { flags: 1, qshift: 16, qaddr: q.qaddr, qtoggle: 1, qindex: 0 },
      requestId: "",
    });
  }
  await host.ic("configureSources", {
    name: n,
    sources: ROUTES.map(([irq, server, priority]) => ({ irq, kvmConfig: kvmConfig(server, priority, irq) })),
    requestId: "",
  });
  for (const [irq] of ROUTES) await host.ic("esbAccess", esb(n, irq, 0xc00));
  for (const server of [0, 1]) {
    await host.ic("timaAccess", tima(n, server, OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, 0xffn));
  }
}

export type Step =
  | ["trigger", number]
  | ["level", number, boolean]
  | ["ack", number]
  | ["eoi", number]
  | ["cppr", number, number];

export async function run(host: Host, vm: string, steps: Step[]): Promise<void> {
  const n = name(vm);
  for (const step of steps) {
    switch (step[0]) {
      case "trigger":
        await host.ic("triggerSources", { name: n, irqs: [step[1]] });
        break;
      case "level":
        await host.ic("setLsiLevel", { name: n, irq: step[1], asserted: step[2] });
        break;
      case "ack":
        await host.ic("timaAccess", tima(n, step[1], OS_PAGE + 0x810, 2, AccessKind.ACCESS_KIND_LOAD));
        break;
      case "eoi":
        await host.ic("esbAccess", esb(n, step[1], 0x000));
        break;
      case "cppr":
        await host.ic(
          "timaAccess",
          tima(n, step[1], OS_PAGE + 0x11, 1, AccessKind.ACCESS_KIND_STORE, BigInt(step[2])),
        );
        break;
    }
  }
}

/** What the guest can observe: queue words in its RAM, PQ and level of each source, OS ring, queue indices. */
export async function observe(host: Host, vm: string) {
  const n = name(vm);
  const ram = new FileGuestMemory(join(host.dataDir, `${vm}.ram`), Number(RAM));
  const words = QUEUES.map((q) =>
    Array.from({ length: 8 }, (_, i) => ram.readU32BE(Number(q.qaddr) + 4 * i)),
  );
  ram.close();
  const sources = [];
  for (const [irq] of ROUTES) {
    const s = (await host.ic("getSourceConfig", { name: n, irq })).source!;
    sources.push([irq, s.pq, s.asserted, s.masked, s.server, s.priority, s.eisn]);
  }
  const vps = [];
  for (const server of [0, 1]) vps.push((await host.ic("getVpState", { name: n, server })).word0);
  const queues = [];
  for (const q of QUEUES)
    queues.push(await host.ic("getQueueConfig", { name: n, server: q.server, priority: q.priority }));
  return { words, sources, vps, queues };
}

export const BEFORE: Step[] = [
  ["trigger", 0x1300],
  ["ack", 0],
  ["eoi", 0x1300],
  ["trigger", 0x1300],
  ["trigger", 0x1301],
  ["level", 0x1200, true],
];
export const STOPPED_ON_SOURCE: Step[] = [
  ["trigger", 0x1300],
  ["trigger", 0x1301],
];
export const STOPPED_ON_DESTINATION: Step[] = [
  ["trigger", 0x1301],
  ["level", 0x1200, false],
];
export const AFTER: Step[] = [
  ["ack", 0],
  ["eoi", 0x1300],
  ["ack", 1],
  ["eoi", 0x1301],
  ["ack", 0],
  ["eoi", 0x1300],
  ["trigger", 0x1300],
  ["eoi", 0x1200],
  ["cppr", 1, 0xff],
];
