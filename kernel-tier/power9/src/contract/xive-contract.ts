import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import type {
  ContractBackendKind,
  ControllerBackend,
  NativeGuestRam,
} from "@vplane/interrupt-controller/native";
import { HcallOpcode as Op, decodeControllerState, encodeKvmSourceConfig } from "@vplane/xive";

/** What one step of the contract showed: a value, or the error (gRPC code, reason, errno). */
export interface ContractObservation {
  step: string;
  /** Which backend answered ("origin" before the migration, "target" after). */
  on: "origin" | "target";
  value?: unknown;
  error?: { code: string; reason: string; errno?: number };
}

export type OpenBackend = (
  kind: ContractBackendKind,
  ram: NativeGuestRam,
  from: { spec: { mode: "XIVE"; nrServers: number; nrIrqs: number } } | { exported: Uint8Array },
) => ControllerBackend;

const RAM_BYTES = 1 << 20;
const ESB = { EOI: 0x000, GET: 0x800, SET_PQ_00: 0xc00 } as const;
/** H_INT_* flags (xive.md §2): SET_EISN, ALWAYS_NOTIFY / DEBUG / STORE (IBM bit 63). */
const SET_EISN = 2n;
const BIT63 = 1n;
const ALWAYS_NOTIFY = 1;
const queueAt = (
  qaddr: number,
  extra: { qtoggle?: number; qindex?: number; flags?: number; qshift?: number } = {},
) => ({
  flags: ALWAYS_NOTIFY,
  qshift: 16,
  qaddr: BigInt(qaddr),
  qtoggle: 1,
  qindex: 0,
  ...extra,
});
const config = (server: number, priority: number, eisn: number, masked = false) =>
  encodeKvmSourceConfig({ server, priority, eisn, masked });

/**
 * The differential contract: one sequence of KVM XIVE device calls (each attribute and its
 * error rows, ESB PQ transitions, a trigger landing in the EQ page with the generation bit, a
 * queue wrap, sync, VP state, reset, export → import into the other backend, then the guest's
 * H_INT_* hypercalls) run on the backend `origin` and, after the migration, on `target`. Every observable goes into the list: errno,
 * reason, PQ, EQ words, qindex/qtoggle, VP state bytes, the exported state's digest. The same
 * list is expected whichever backends run it; the differences that remain are listed in
 * known-differences.ts with the kernel source that explains them.
 */
export function runXiveContract(
  open: OpenBackend,
  origin: ContractBackendKind,
  target: ContractBackendKind,
  dir: string,
  emit: (observation: ContractObservation) => void = () => undefined,
): ContractObservation[] {
  const observations: ContractObservation[] = [];
  const ram = {
    path: `${dir}/contract-${origin.toLowerCase()}-${target.toLowerCase()}.ram`,
    bytes: RAM_BYTES,
  };
  writeFileSync(ram.path, new Uint8Array(RAM_BYTES));
  let on: "origin" | "target" = "origin";
  const see = (step: string, run: () => unknown) => {
    try {
      observations.push({ step, on, value: normalise(run()) });
      emit(observations.at(-1)!);
    } catch (error) {
      const e = error as { code?: unknown; reason?: unknown; errno?: unknown; message?: string };
      if (typeof e.reason !== "string") throw error;
      observations.push({
        step,
        on,
        error: {
          code: String(e.code),
          reason: e.reason,
          ...(typeof e.errno === "number" ? { errno: e.errno } : {}),
        },
      });
      emit(observations.at(-1)!);
    }
  };
  const eqWord = (qaddr: number, index: number) => readWord(ram.path, qaddr + 4 * index);

  const spec = { mode: "XIVE" as const, nrServers: 4, nrIrqs: 4096 };
  let b = open(origin, ram, { spec });
  try {
    const esbLoad = (irq: number, offset: number) => b.esbAccess(irq, true, offset, 8, false, 0n);
    const triggerStore = (irq: number) => b.esbAccess(irq, false, 0, 8, true, 0n);

    see("connect vCPU 0 at server 0", () => b.connectVcpu(0, 0));
    see("connect vCPU 1 at server 1", () => b.connectVcpu(1, 1));
    see("connect vCPU 0 again", () => b.connectVcpu(0, 0));
    see("SOURCE 16 (MSI)", () => b.initSource(16, false, false));
    see("SOURCE 17 (LSI)", () => b.initSource(17, true, false));
    see("SOURCE 18 (MSI)", () => b.initSource(18, false, false));
    see("SOURCE 1048576", () => b.initSource(1 << 20, false, false));
    see("SOURCE_CONFIG of 4096 (no block)", () => b.configureSource(4096, config(0, 6, 1)));
    see("SOURCE_CONFIG of 19 (not initialised)", () => b.configureSource(19, config(0, 6, 1)));
    see("SOURCE_CONFIG priority 7", () => b.configureSource(16, config(0, 7, 1)));
    see("EQ_CONFIG server 3 (no vCPU)", () => b.configureQueue(3, 6, queueAt(0x10000)));
    see("EQ_CONFIG priority 7", () => b.configureQueue(0, 7, queueAt(0x10000)));
    see("EQ_CONFIG flags 0", () => b.configureQueue(0, 6, queueAt(0x10000, { flags: 0 })));
    see("EQ_CONFIG qshift 12", () => b.configureQueue(0, 6, queueAt(0x10000, { qshift: 12 })));
    see("EQ_CONFIG misaligned", () => b.configureQueue(0, 6, queueAt(0x10100)));
    see("EQ_CONFIG outside guest RAM", () => b.configureQueue(0, 6, queueAt(0x200000)));
    see("EQ_CONFIG 0/6 at 0x10000", () => b.configureQueue(0, 6, queueAt(0x10000)));
    see("EQ_CONFIG get 0/6", () => b.getQueueConfig(0, 6)?.eq);
    see("EQ_CONFIG get 0/5 (no page)", () => b.getQueueConfig(0, 5)?.eq ?? "no page");
    see("SOURCE_CONFIG 16 -> 0/6 eisn 0x10", () => b.configureSource(16, config(0, 6, 0x10)));
    see("source 16", () => b.getSource(16));

    see("ESB GET 16", () => esbLoad(16, ESB.GET));
    see("ESB SET_PQ_00 16", () => esbLoad(16, ESB.SET_PQ_00));
    see("trigger 16 (PQ 00)", () => triggerStore(16));
    see("ESB GET 16 after trigger", () => esbLoad(16, ESB.GET));
    see("EQ 0/6 word 0", () => eqWord(0x10000, 0));
    see("EQ 0/6 after one trigger", () => b.getQueueConfig(0, 6)?.eq);
    see("trigger 16 (PQ 10)", () => triggerStore(16));
    see("ESB GET 16 after second trigger", () => esbLoad(16, ESB.GET));
    see("ESB EOI 16 (PQ 11 re-forwards)", () => esbLoad(16, ESB.EOI));
    see("ESB GET 16 after EOI", () => esbLoad(16, ESB.GET));
    see("EQ 0/6 word 1", () => eqWord(0x10000, 1));
    see("ESB EOI 16 (PQ 10)", () => esbLoad(16, ESB.EOI));
    see("ESB GET 16 after second EOI", () => esbLoad(16, ESB.GET));

    // The wrap runs on server 1's queue: a second queue of one vCPU is refused by a kernel whose
    // XIVE has single escalation (known-differences.ts), and releasing the device after that
    // refusal oopses the 6.1 kernel.
    see("EQ_CONFIG 1/6 at 0x20000 qtoggle 1 qindex 16382", () =>
      b.configureQueue(1, 6, queueAt(0x20000, { qindex: 16382 })),
    );
    see("EQ_CONFIG get 1/6", () => b.getQueueConfig(1, 6)?.eq);
    see("SOURCE_CONFIG 18 -> 1/6 eisn 0x18", () => b.configureSource(18, config(1, 6, 0x18)));
    see("ESB SET_PQ_00 18", () => esbLoad(18, ESB.SET_PQ_00));
    for (let i = 0; i < 3; i++) {
      see(`wrap: trigger 18 #${i + 1}`, () => triggerStore(18));
      see(`wrap: EOI 18 #${i + 1}`, () => esbLoad(18, ESB.EOI));
    }
    see("EQ 1/6 after the wrap", () => b.getQueueConfig(1, 6)?.eq);
    see("EQ 1/6 words 16382, 16383, 0", () => [
      eqWord(0x20000, 16382),
      eqWord(0x20000, 16383),
      eqWord(0x20000, 0),
    ]);

    see("SOURCE_SYNC 16", () => b.syncSource(16));
    see("SOURCE_SYNC 4096 (no block)", () => b.syncSource(4096));
    see("SOURCE_SYNC 20 (not initialised)", () => b.syncSource(20));
    see("EQ_SYNC", () => b.syncQueues());

    see("VP_STATE get server 0", () => b.getVpState(0));
    see("VP_STATE set server 0", () => b.setVpState(0, [0x00ff_0000_0000_00ffn, 0n]));
    see("VP_STATE get server 0 after set", () => b.getVpState(0));
    see("VP_STATE get server 3 (no vCPU)", () => b.getVpState(3));

    see("ESB SET_PQ_00 16 before quiesce", () => esbLoad(16, ESB.SET_PQ_00));
    see("quiesce", () => b.quiesce());
    see("ESB GET 16 while quiesced", () => b.esbAccess(16, true, ESB.GET, 8, false, 0n));
    const exported = b.exportState();
    see("exported state", () => stateSummary(exported.payload));
    b.close();

    on = "target";
    b = open(target, ram, { exported: exported.payload });
    see("imported: quiesced", () => b.quiesced);
    see("resume", () => b.resume());
    see("imported: source 16", () => b.getSource(16));
    see("imported: EQ 0/6", () => b.getQueueConfig(0, 6)?.eq);
    see("imported: VP_STATE server 0", () => b.getVpState(0));
    see("imported: trigger 16", () => triggerStore(16));
    see("imported: EQ 0/6 word 2", () => eqWord(0x10000, 2));
    see("imported: EQ 0/6 after the trigger", () => b.getQueueConfig(0, 6)?.eq);
    see("RESET", () => b.reset());
    see("after RESET: EQ 0/6", () => b.getQueueConfig(0, 6)?.eq ?? "no page");
    see("after RESET: source 16", () => b.getSource(16));

    // The guest's H_INT_* calls (xive.md §2), as QEMU makes them with the KVM XIVE device.
    const h = (step: string, opcode: number, args: bigint[]) =>
      see(`H_INT ${step}`, () => b.hcall(0, opcode, args));
    h("GET_SOURCE_INFO before CAS", Op.H_INT_GET_SOURCE_INFO, [0n, 16n]);
    see("CAS: the guest selects XIVE", () => b.selectMode("XIVE"));
    h("GET_SOURCE_INFO flags 1", Op.H_INT_GET_SOURCE_INFO, [1n, 16n]);
    h("GET_SOURCE_INFO 4096 (past nr_irqs)", Op.H_INT_GET_SOURCE_INFO, [0n, 4096n]);
    h("GET_SOURCE_INFO 19 (not initialised)", Op.H_INT_GET_SOURCE_INFO, [0n, 19n]);
    h("GET_SOURCE_INFO 16 (MSI)", Op.H_INT_GET_SOURCE_INFO, [0n, 16n]);
    h("GET_SOURCE_INFO 17 (LSI)", Op.H_INT_GET_SOURCE_INFO, [0n, 17n]);
    // Queues QEMU's checks pass and the KVM device refuses, on server 1: QEMU's emulated device
    // takes them (known-differences.ts), and nothing later looks at server 1.
    h("SET_QUEUE_CONFIG 1/6 4 KiB", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 1n, 6n, 0x60000n, 12n]);
    h("SET_QUEUE_CONFIG 1/6 without ALWAYS_NOTIFY", Op.H_INT_SET_QUEUE_CONFIG, [0n, 1n, 6n, 0x70000n, 16n]);
    h("SET_QUEUE_CONFIG flags 2", Op.H_INT_SET_QUEUE_CONFIG, [2n, 0n, 6n, 0x40000n, 16n]);
    h("SET_QUEUE_CONFIG priority 7", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 0n, 7n, 0x40000n, 16n]);
    h("SET_QUEUE_CONFIG server 3 (no vCPU)", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 3n, 6n, 0x40000n, 16n]);
    h("SET_QUEUE_CONFIG size 15", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 0n, 6n, 0x40000n, 15n]);
    h("SET_QUEUE_CONFIG misaligned", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 0n, 6n, 0x41000n, 16n]);
    h("SET_QUEUE_CONFIG outside guest RAM", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 0n, 6n, 0x200000n, 16n]);
    h("SET_SOURCE_CONFIG 16 -> 0/6 with no queue", Op.H_INT_SET_SOURCE_CONFIG, [
      SET_EISN,
      16n,
      0n,
      6n,
      0x116n,
    ]);
    h("SET_QUEUE_CONFIG 0/6 at 0x40000", Op.H_INT_SET_QUEUE_CONFIG, [BIT63, 0n, 6n, 0x40000n, 16n]);
    h("SET_QUEUE_CONFIG 0/5 (a second queue of vCPU 0)", Op.H_INT_SET_QUEUE_CONFIG, [
      BIT63,
      0n,
      5n,
      0x50000n,
      16n,
    ]);
    h("GET_QUEUE_INFO 0/6", Op.H_INT_GET_QUEUE_INFO, [0n, 0n, 6n]);
    h("GET_QUEUE_INFO flags 1", Op.H_INT_GET_QUEUE_INFO, [1n, 0n, 6n]);
    h("GET_QUEUE_CONFIG 0/6 DEBUG", Op.H_INT_GET_QUEUE_CONFIG, [BIT63, 0n, 6n]);
    h("GET_QUEUE_CONFIG 0/4 (never configured)", Op.H_INT_GET_QUEUE_CONFIG, [BIT63, 0n, 4n]);
    h("SET_SOURCE_CONFIG flags 4", Op.H_INT_SET_SOURCE_CONFIG, [4n, 16n, 0n, 6n, 0x116n]);
    h("SET_SOURCE_CONFIG 19 (not initialised)", Op.H_INT_SET_SOURCE_CONFIG, [SET_EISN, 19n, 0n, 6n, 0x116n]);
    h("SET_SOURCE_CONFIG priority 7", Op.H_INT_SET_SOURCE_CONFIG, [SET_EISN, 16n, 0n, 7n, 0x116n]);
    h("SET_SOURCE_CONFIG target 9", Op.H_INT_SET_SOURCE_CONFIG, [SET_EISN, 16n, 9n, 6n, 0x116n]);
    h("SET_SOURCE_CONFIG 16 -> 0/6 eisn 0x116", Op.H_INT_SET_SOURCE_CONFIG, [SET_EISN, 16n, 0n, 6n, 0x116n]);
    h("GET_SOURCE_CONFIG 16", Op.H_INT_GET_SOURCE_CONFIG, [0n, 16n]);
    h("ESB GET 16", Op.H_INT_ESB, [0n, 16n, 0x800n, 0n]);
    h("ESB SET_PQ_00 16", Op.H_INT_ESB, [0n, 16n, 0xc00n, 0n]);
    h("ESB trigger store 16", Op.H_INT_ESB, [BIT63, 16n, 0n, 0n]);
    see("H_INT EQ 0/6 word 0 after the trigger", () => eqWord(0x40000, 0));
    h("GET_QUEUE_CONFIG 0/6 DEBUG after the trigger", Op.H_INT_GET_QUEUE_CONFIG, [BIT63, 0n, 6n]);
    h("ESB EOI 16", Op.H_INT_ESB, [0n, 16n, 0n, 0n]);
    h("ESB flags 2", Op.H_INT_ESB, [2n, 16n, 0x800n, 0n]);
    h("ESB offset past 1<<17", Op.H_INT_ESB, [0n, 16n, 0x20001n, 0n]);
    h("ESB of 18 reaching 19's page (not initialised)", Op.H_INT_ESB, [0n, 18n, 0x10800n, 0n]);
    h("SET_SOURCE_CONFIG 17 (LSI) -> 0/6 eisn 0x117", Op.H_INT_SET_SOURCE_CONFIG, [
      SET_EISN,
      17n,
      0n,
      6n,
      0x117n,
    ]);
    h("ESB SET_PQ_00 17", Op.H_INT_ESB, [0n, 17n, 0xc00n, 0n]);
    see("H_INT LSI 17 asserted", () => b.setLsiLevel(17, true));
    see("SetLsiLevel 19 (not initialised)", () => b.setLsiLevel(19, true));
    h("ESB load-EOI 17 while asserted", Op.H_INT_ESB, [0n, 17n, 0n, 0n]);
    h("ESB GET 17 after the EOI", Op.H_INT_ESB, [0n, 17n, 0x800n, 0n]);
    see("H_INT EQ 0/6 words 1, 2 (LSI 17 twice)", () => [eqWord(0x40000, 1), eqWord(0x40000, 2)]);
    h("SYNC 16", Op.H_INT_SYNC, [0n, 16n]);
    h("SYNC flags 1", Op.H_INT_SYNC, [1n, 16n]);
    h("SYNC 19 (not initialised)", Op.H_INT_SYNC, [0n, 19n]);
    h("SET_OS_REPORTING_LINE", Op.H_INT_SET_OS_REPORTING_LINE, [0n, 0n]);
    h("GET_OS_REPORTING_LINE", Op.H_INT_GET_OS_REPORTING_LINE, [0n, 0n, 0n]);
    h("SET_SOURCE_CONFIG 16 priority 0xFF (masks)", Op.H_INT_SET_SOURCE_CONFIG, [0n, 16n, 0n, 0xffn, 0n]);
    h("GET_SOURCE_CONFIG 16 after the mask", Op.H_INT_GET_SOURCE_CONFIG, [0n, 16n]);
    h("ESB SET_PQ_00 16 after the mask", Op.H_INT_ESB, [0n, 16n, 0xc00n, 0n]);
    h("ESB trigger store 16 after the mask", Op.H_INT_ESB, [BIT63, 16n, 0n, 0n]);
    // kvm_set_irq on an MSI: level 1 triggers it (PQ 10 -> 11 while masked), level 0 does nothing.
    see("SetLsiLevel 16 (an MSI) at level 1", () => b.setLsiLevel(16, true));
    see("SetLsiLevel 16 (an MSI) at level 0", () => b.setLsiLevel(16, false));
    h("ESB GET 16 after the MSI's levels 1 and 0", Op.H_INT_ESB, [0n, 16n, 0x800n, 0n]);
    see("H_INT EQ 0/6 word 3 (nothing: masked)", () => eqWord(0x40000, 3));
    see("H_INT from server 3 (no vCPU)", () => b.hcall(3, Op.H_INT_SYNC, [0n, 16n]));
    h("RESET flags 1", Op.H_INT_RESET, [1n]);
    h("RESET", Op.H_INT_RESET, [0n]);
    h("GET_QUEUE_CONFIG 0/6 after RESET", Op.H_INT_GET_QUEUE_CONFIG, [BIT63, 0n, 6n]);
    see("H_INT source 16 after RESET", () => b.getSource(16));
    h("SET_QUEUE_CONFIG 0/5 after RESET (the escalation is free)", Op.H_INT_SET_QUEUE_CONFIG, [
      BIT63,
      0n,
      5n,
      0x50000n,
      16n,
    ]);
  } finally {
    b.close();
    rmSync(ram.path, { force: true });
  }
  return observations;
}

/** The exported state's digest and the facts a reader checks first. */
function stateSummary(payload: Uint8Array): unknown {
  const state = decodeControllerState(payload);
  return {
    sha256: createHash("sha256").update(payload).digest("hex"),
    bytes: payload.byteLength,
    activeMode: state.activeMode,
    vcpus: state.vcpus,
    machineSources: state.machineSources,
    stoppedTriggers: state.stoppedTriggers,
  };
}

/** A big-endian u32 of the RAM file (the queue entries as the guest reads them). */
function readWord(path: string, offset: number): string {
  const fd = openSync(path, "r");
  try {
    const bytes = Buffer.alloc(4);
    readSync(fd, bytes, 0, 4, offset);
    return `0x${bytes.readUInt32BE(0).toString(16).padStart(8, "0")}`;
  } finally {
    closeSync(fd);
  }
}

/** Values as JSON keeps them: BigInt as decimal strings, undefined as null. */
function normalise(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)),
  ) as unknown;
}
