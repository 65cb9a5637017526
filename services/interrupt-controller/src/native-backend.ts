import { closeSync, openSync } from "node:fs";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { Errno, KVM_REG_PPC_VP_STATE, KvmCap, MappedRegion, type AccessSize } from "@vplane/host-kernel";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  InterruptController,
  PQ,
  XiveError,
  decodeEsbStore,
  dumpController,
  restoredSourceConfig,
  type ActiveMode,
  type CheckedControllerState,
  type HcallResult,
  type InKernelXive,
  type KvmXiveEq,
  type SourceState,
  type XiveDevice,
} from "@vplane/xive";
import type {
  ControllerBackend,
  ControllerSpec,
  ExportedState,
  RtasCallName,
  TriggerCounts,
} from "./controller-backend.js";
import { kernelCall } from "./native-kernel-errors.js";
import { KvmVm } from "./native-kvm-vm.js";
import { KvmXiveDevice } from "./native-kvm-xive-device.js";
import { probeNativeXive, type NativeXiveHost, thisHost } from "./native-probe.js";

/** ESB management-page loads (xive.md §3). */
const ESB_GET = 0x800;
const ESB_SET_PQ = 0xc00;
/** Guest RAM is memslot 0 at guest-physical 0 in a VM this backend owns. */
const RAM_SLOT = 0;

/** Guest RAM a VM this backend creates is given: a file, mapped shared (the kernel writes EQ pages into it). */
export interface NativeGuestRam {
  path: string;
  bytes: number;
}

const unimplemented = (reason: string, message: string) =>
  new XiveError({ code: "UNIMPLEMENTED", reason, message });

/**
 * The native backend: one VM's interrupt controller is the kernel's KVM XIVE device
 * (xive.md §1), driven through libs/host-kernel. The VM belongs to a VMM that handed over its
 * fds (adopt) or to this backend (own: it creates the VM and maps guest RAM into it).
 *
 * Beside the device it keeps a shadow: vplane's own model, fed every configuration the kernel
 * accepted, on scratch memory (it is never triggered, so it never writes a queue). The kernel is
 * the authority for everything it can be asked (PQ bits, queue indices, VP state); the shadow
 * holds what it cannot (the configuration as set, for reads and the dump), names a kernel
 * error's reason the way the emulated backend does when it refuses the same input with the same
 * errno (native-kernel-errors.ts), and writes the exported state, after it has been synced from
 * the kernel, in the emulated backend's format: a controller migrates native ↔ emulated.
 */
export class NativeBackend implements ControllerBackend {
  readonly kind = "NATIVE";
  readonly activeMode: ActiveMode = "XIVE";
  readonly signalsUnavailable = {
    reason: "NATIVE_SIGNALS_IN_KVM_RUN",
    message:
      "the KVM XIVE device raises a vCPU's exception line inside KVM_RUN of that vCPU (the VMM's thread), " +
      "not to the service: a VMM sees its vCPUs' interrupts there",
  };
  /** Calls the kernel refused and the shadow model accepted (each one a model bug to fix). */
  readonly divergences: string[] = [];
  private vmmGone = false;

  private constructor(
    private readonly vm: KvmVm,
    private readonly device: KvmXiveDevice,
    private readonly shadow: InterruptController,
    private readonly ram: MappedRegion | undefined,
  ) {}

  /**
   * Creates the device on `vm` (KVM_CREATE_DEVICE, NR_SERVERS) with a new shadow. Nothing
   * half-made: a failure closes what was opened (the device fd; an owned VM and its RAM mapping).
   */
  static create(
    spec: ControllerSpec,
    ram: NativeGuestRam,
    vm?: KvmVm,
    host: NativeXiveHost = thisHost,
  ): NativeBackend {
    requireXiveMode(spec.mode, "controller.mode");
    return NativeBackend.build(ram, vm, host, (shadow) => shadow.setNrServers(spec.nrServers), {
      nrIrqs: spec.nrIrqs,
    });
  }

  /** A controller an exported state describes, quiesced until resume (xive.md §6 post_load). */
  static importState(
    state: CheckedControllerState,
    ram: NativeGuestRam,
    vm?: KvmVm,
    host: NativeXiveHost = thisHost,
  ): NativeBackend {
    requireXiveMode(state.activeMode, "sections.payload");
    const shadowMemory = new SparseGuestMemory(ram.bytes, { dirtyPageSize: 65536 });
    const shadow = InterruptController.importState(shadowMemory, {}, state);
    return NativeBackend.build(ram, vm, host, () => undefined, { nrIrqs: state.nrIrqs }, shadow);
  }

  private static build(
    ram: NativeGuestRam,
    adopted: KvmVm | undefined,
    host: NativeXiveHost,
    configure: (shadow: InterruptController) => void,
    options: { nrIrqs: number },
    imported?: InterruptController,
  ): NativeBackend {
    requireNativeXive(host);
    const shadow =
      imported ??
      new InterruptController(new SparseGuestMemory(ram.bytes, { dirtyPageSize: 65536 }), {
        mode: "XIVE",
        nrIrqs: options.nrIrqs,
      });
    configure(shadow);
    refuseSecondQueues(shadow.xive("replay"));
    const vm = adopted ?? KvmVm.create();
    let mapping: MappedRegion | undefined;
    let device: KvmXiveDevice | undefined;
    try {
      if (adopted === undefined) mapping = mapGuestRam(vm, ram);
      device = kernelCall(
        () => KvmXiveDevice.create(vm, options.nrIrqs),
        () => undefined,
      );
      const backend = new NativeBackend(vm, device, shadow, mapping);
      kernelCall(
        () => backend.replayShadow(),
        () => undefined,
      );
      return backend;
    } catch (error) {
      device?.close();
      mapping?.unmap();
      if (adopted === undefined) vm.close();
      throw error;
    }
  }

  /**
   * Puts the shadow's configuration into the new device, in QEMU's post_load order (xive.md §6):
   * each unmasked source's SOURCE_CONFIG names QEMU's END (restoredSourceConfig), and the kernel
   * selects from it as the shadow's restore did.
   */
  private replayShadow(): void {
    const xive = this.shadow.xive("replay");
    this.device.setNrServers(this.shadow.nrServers);
    for (const { vcpuId, server } of this.shadow.connectedVcpus()) this.connectKernelVcpu(vcpuId, server);
    for (const server of xive.connectedServers()) {
      for (let priority = 0; priority < 7; priority++) {
        const eq = xive.getQueueConfig(server, priority);
        if (eq !== undefined) this.device.setQueueConfig(server, priority, eq);
      }
    }
    for (const { irq } of this.shadow.initialisedSources()) {
      const source = xive.source(irq)!;
      this.device.initSource(irq, source.lsi, source.asserted);
      if (!source.masked) this.device.setSourceConfig(irq, restoredSourceConfig(xive, irq));
      this.device.esbAccess(irq, true, ESB_SET_PQ + (source.pq << 8), 8, false);
    }
    for (const { server } of this.shadow.connectedVcpus()) {
      const state = xive.getVpState(server);
      this.setKernelVpState(server, state);
    }
  }

  /** The KVM XIVE device's fd (a VMM that handed its VM over gets it back to map the pages). */
  get deviceFd(): number {
    return this.device.fd;
  }

  /**
   * The VMM that handed the VM over went away (its handoff connection closed): from now on every
   * call that reaches the device, reads of its state included, is FAILED_PRECONDITION VMM_GONE;
   * the controller can still be deleted (close).
   */
  markVmmGone(): void {
    this.vmmGone = true;
  }

  private assertVmm(): void {
    if (!this.vmmGone) return;
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "VMM_GONE",
      message: "the VMM that handed this VM over has exited: its VM is gone; delete the controller",
    });
  }

  private kernel<T>(call: () => T, modelAnswer: () => unknown): T {
    this.assertVmm();
    return kernelCall(call, modelAnswer, (divergence) => this.divergences.push(divergence));
  }

  get nrServers(): number {
    return this.shadow.nrServers;
  }

  get nrIrqs(): number {
    return this.device.nrIrqs;
  }

  connectedVcpus(): { vcpuId: number; server: number }[] {
    return this.shadow.connectedVcpus();
  }

  sourceCount(): number {
    return this.shadow.initialisedSources().length;
  }

  initialisedSources(): { irq: number; lsi: boolean }[] {
    return this.shadow.initialisedSources();
  }

  /**
   * KVM_ENABLE_CAP(KVM_CAP_PPC_PAPR) then KVM_ENABLE_CAP(KVM_CAP_PPC_IRQ_XIVE, [device fd,
   * server]) on the vCPU (xive.md §1.1). PAPR first: without it the kernel answers EINVAL but
   * connects the vCPU all the same (a retry is EBUSY); should that EINVAL come anyway, the
   * connection is recorded, since the kernel holds it, and the error is reported.
   */
  connectVcpu(vcpuId: number, server: number): void {
    this.shadow.assertRunning("ConnectVcpu");
    try {
      this.connectKernelVcpu(vcpuId, server);
    } catch (error) {
      if (error instanceof XiveError && error.errno === Errno.EINVAL && this.kernelConnected(vcpuId)) {
        this.shadow.connectVcpu(vcpuId, server);
      }
      throw error;
    }
    this.shadow.connectVcpu(vcpuId, server);
  }

  /** Whether the kernel holds the vCPU connected: a second IRQ_XIVE enable is then EBUSY. */
  private kernelConnected(vcpuId: number): boolean {
    try {
      this.vm.enableVcpuCap(vcpuId, KvmCap.KVM_CAP_PPC_IRQ_XIVE, [this.device.fd, 0]);
      return true;
    } catch (error) {
      return (error as { errno?: number }).errno === Errno.EBUSY;
    }
  }

  private connectKernelVcpu(vcpuId: number, server: number): void {
    this.kernel(
      () => {
        this.vm.enablePapr(vcpuId);
        this.vm.enableVcpuCap(vcpuId, KvmCap.KVM_CAP_PPC_IRQ_XIVE, [this.device.fd, server]);
      },
      () => this.shadow.connectVcpu(vcpuId, server),
    );
  }

  selectMode(mode: ActiveMode): void {
    this.shadow.selectMode(mode);
  }

  initSource(irq: number, lsi: boolean, asserted: boolean): void {
    this.shadow.assertRunning("InitSources");
    this.kernel(
      () => this.device.initSource(irq, lsi, asserted),
      () => this.shadow.initSource(irq, { lsi, asserted }),
    );
    this.shadow.initSource(irq, { lsi, asserted });
  }

  /**
   * SOURCE_CONFIG. The kernel may target another vCPU at the same priority when the asked one's
   * queue is full (xive.md §1.3) and does not say which: the effective server returned is the
   * shadow's, which selects as the kernel does from the configuration it has seen.
   */
  configureSource(irq: number, kvmConfig: bigint): number {
    return this.sourceConfig(irq, kvmConfig, (xive) => xive.setSourceConfig(irq, kvmConfig));
  }

  /** SOURCE_CONFIG as a restore gives it: the shadow keeps QEMU's END apart as the kernel routes. */
  restoreSourceConfig(irq: number, kvmConfig: bigint): number {
    return this.sourceConfig(irq, kvmConfig, (xive) => xive.restoreSourceConfig(irq, kvmConfig));
  }

  /** SOURCE_CONFIG in the kernel, then `inShadow` (also the model's answer to a kernel refusal). */
  private sourceConfig(irq: number, kvmConfig: bigint, inShadow: (xive: XiveDevice) => number): number {
    const xive = this.shadow.mutableXive("SOURCE_CONFIG");
    this.kernel(
      () => this.device.setSourceConfig(irq, kvmConfig),
      () => inShadow(xive),
    );
    return inShadow(xive);
  }

  /** The configuration as set (the shadow's) with the PQ bits the kernel has now (an ESB GET). */
  getSource(irq: number): SourceState {
    const source = this.shadow.xive("GET_SOURCE_CONFIG").source(irq);
    if (source === undefined) {
      throw new XiveError({
        code: "NOT_FOUND",
        reason: "SOURCE_NOT_VALID",
        message: `source ${irq} has not been initialised`,
        field: "irq",
      });
    }
    return { ...source, pq: Number(this.esbLoad(irq, ESB_GET)) };
  }

  configureQueue(server: number, priority: number, eq: KvmXiveEq): void {
    const xive = this.shadow.mutableXive("EQ_CONFIG");
    refuseSecondQueue(xive, server, priority, eq);
    this.kernel(
      () => this.device.setQueueConfig(server, priority, eq),
      () => xive.setQueueConfig(server, priority, eq),
    );
    xive.setQueueConfig(server, priority, eq);
  }

  /** EQ_CONFIG get from the kernel (live qtoggle/qindex); undefined for a queue with no page. */
  getQueueConfig(server: number, priority: number): { eq: KvmXiveEq; entriesWritten: number } | undefined {
    const xive = this.shadow.xive("EQ_CONFIG");
    const eq = this.kernel(
      () => this.device.getQueueConfig(server, priority),
      () => xive.getQueueConfig(server, priority),
    );
    // The kernel does not count the entries it wrote; 0 says "not counted".
    return eq.qshift === 0 ? undefined : { eq, entriesWritten: 0 };
  }

  syncSource(irq: number): void {
    this.kernel(
      () => this.device.syncSource(irq),
      () => this.shadow.xive("SOURCE_SYNC").syncSource(irq),
    );
  }

  /** CTRL/EQ_SYNC; the queue pages (which the kernel marks dirty in its own log) as guest-physical addresses. */
  syncQueues(): { pages: bigint[]; pageSize: number } {
    this.kernel(
      () => this.device.eqSync(),
      () => undefined,
    );
    return this.queuePages(this.shadow.xive("EQ_SYNC").eqSync());
  }

  private queuePages(pages: number[]): { pages: bigint[]; pageSize: number } {
    const pageSize = this.shadow.memory.pageSize;
    return { pages: pages.map((page) => BigInt(page) * BigInt(pageSize)), pageSize };
  }

  reset(): void {
    const xive = this.shadow.mutableXive("RESET");
    this.kernel(
      () => this.device.reset(),
      () => undefined,
    );
    xive.reset();
  }

  /** KVM_GET_ONE_REG(KVM_REG_PPC_VP_STATE) on the vCPU of `server` (xive.md §1.6). */
  getVpState(server: number): [bigint, bigint] {
    const xive = this.shadow.xive("VP_STATE", Errno.EPERM);
    const vcpuId = this.vcpuOf(server, () => xive.getVpState(server));
    const [word0, word1] = this.kernel(
      () => this.vm.getOneReg(vcpuId, KVM_REG_PPC_VP_STATE, 2),
      () => xive.getVpState(server),
    );
    return [timaOrder(word0!), timaOrder(word1!)];
  }

  setVpState(server: number, state: [bigint, bigint]): void {
    const xive = this.shadow.mutableXive("VP_STATE", Errno.EPERM);
    this.vcpuOf(server, () => xive.setVpState(server, state));
    this.setKernelVpState(server, state);
    xive.setVpState(server, state);
  }

  private setKernelVpState(server: number, state: readonly [bigint, bigint]): void {
    const vcpuId = this.vcpuOf(server, () => undefined);
    this.kernel(
      () => this.vm.setOneReg(vcpuId, KVM_REG_PPC_VP_STATE, state.map(timaOrder)),
      () => this.shadow.xive("VP_STATE", Errno.EPERM).setVpState(server, state),
    );
  }

  /** The vCPU connected at `server`, or the shadow's error for it (ENOENT, as the kernel answers). */
  private vcpuOf(server: number, modelAnswer: () => unknown): number {
    const vcpu = this.shadow.connectedVcpus().find((v) => v.server === server);
    if (vcpu === undefined) {
      modelAnswer();
      throw new XiveError({
        code: "NOT_FOUND",
        reason: "VCPU_NOT_CONNECTED",
        message: `no vCPU is connected at server ${server}`,
        errno: 2,
        field: "server",
      });
    }
    return vcpu.vcpuId;
  }

  /** A load or store on the source's mapped ESB page, checked first as the model checks it. */
  esbAccess(
    irq: number,
    management: boolean,
    offset: number,
    size: number,
    store: boolean,
    value: bigint,
    counts?: TriggerCounts,
  ): bigint {
    const xive = this.shadow.mutableXive("ESB access");
    // The model refuses what would fault (SIGBUS for a source that is not valid) or what the
    // hardware does not decode, with its reasons; it is asked with a GET, which changes nothing.
    xive.esbLoad(irq, true, ESB_GET, size);
    if (offset < 0 || offset >= this.device.pageSize) xive.esbLoad(irq, management, offset, size);
    const op = store && counts !== undefined ? (management ? decodeEsbStore(offset) : "TRIGGER") : undefined;
    const pq = op === "TRIGGER" ? Number(this.esbLoad(irq, ESB_GET)) : PQ.RESET; // an inject skips PQ
    const answer = this.kernel(
      () => this.device.esbAccess(irq, management, offset, size as AccessSize, store, value),
      () => undefined,
    );
    if (counts !== undefined && (op === "TRIGGER" || op === "INJECT"))
      counts[triggerOutcome(pq, xive.source(irq)!.masked)]++;
    return answer;
  }

  private esbLoad(irq: number, offset: number): bigint {
    this.assertVmm();
    return this.device.esbAccess(irq, true, offset, 8, false);
  }

  timaAccess(): bigint {
    throw unimplemented(
      "NATIVE_TIMA_PER_HARDWARE_THREAD",
      "the native TIMA shows the context of the vCPU running on the hardware thread that touches it; " +
        "the service runs no vCPU, so a VMM maps the TIMA page (KVM_XIVE_TIMA_PAGE_OFFSET) of the device fd into its guest",
    );
  }

  /**
   * Triggers with ESB trigger stores. The kernel does not say what became of a trigger; the
   * counts come from the PQ the source had (an ESB GET before the store) and the shadow's mask.
   */
  trigger(irqs: readonly number[], counts: TriggerCounts): void {
    this.assertVmm();
    this.shadow.assertRunning("TriggerSources");
    for (const irq of irqs) {
      const source = this.shadow.xive("TriggerSources").source(irq);
      if (source === undefined) {
        counts.dropped++;
        continue;
      }
      const pq = Number(this.esbLoad(irq, ESB_GET));
      this.device.esbAccess(irq, false, 0, 8, true, 0n);
      counts[triggerOutcome(pq, source.masked)]++;
    }
  }

  /**
   * An LSI's level, kept in the shadow's source status as QEMU keeps it beside the KVM device
   * (kvmppc_xive_source_set_irq); asserting triggers the source, deasserting only records it.
   * A source the device does not have is refused as KVM's own line path refuses it (kvm_set_irq
   * → kvmppc_xive_set_irq, book3s_xive.c: EINVAL), before its ESB page, which does not exist,
   * is touched. (The emulated backend answers OK there, as QEMU's void xive_source_set_irq.)
   */
  setLsiLevel(irq: number, asserted: boolean, counts?: TriggerCounts): void {
    this.shadow.assertRunning("SetLsiLevel");
    const source = this.shadow.xive("SetLsiLevel").source(irq);
    if (source === undefined) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "SOURCE_NOT_VALID",
        errno: Errno.EINVAL,
        field: "irq",
        message: `source ${irq} has not been initialised (InitSources): the KVM XIVE device's line refuses it (EINVAL)`,
      });
    }
    // kvmppc_xive_set_irq: an LSI's line follows the level; an MSI ignores level 0, and level 1
    // triggers it as an LSI's assert does (QEMU's xive_source_set_irq, the emulated backend, alike).
    if (source.lsi) this.shadow.xive("SetLsiLevel").sources.setAsserted(irq, asserted);
    if (!asserted) return;
    const pq = Number(this.esbLoad(irq, ESB_GET)); // the kernel's PQ: the shadow does not follow it
    this.device.esbAccess(irq, false, 0, 8, true, 0n);
    if (counts !== undefined) counts[triggerOutcome(pq, source.masked)]++;
  }

  /**
   * A guest's H_INT_* call as QEMU makes it with the KVM XIVE device (xive.md §2): the shadow
   * holds QEMU's tables and runs QEMU's checks; the device does the work through this backend's
   * own calls (kernel first, then the shadow's copy), its refusals H_HARDWARE.
   */
  hcall(server: number, opcode: number, args: readonly bigint[]): HcallResult {
    this.assertVmm();
    return this.shadow.hcall(server, opcode, args, this.inKernel);
  }

  hcallUndo(opcode: number, args: readonly bigint[]): (() => void) | undefined {
    this.assertVmm();
    return this.shadow.hcallUndo(opcode, args, this.inKernel);
  }

  requestedEnds(): ReadonlyMap<number, number> {
    const xive = this.shadow.xive("requested_ends");
    return xive.requestedEnds.live(xive.sources);
  }

  private readonly inKernel: InKernelXive = {
    setSourceConfig: (lisn, kvmConfig) => this.configureSource(lisn, kvmConfig),
    setQueueConfig: (server, priority, eq) => this.configureQueue(server, priority, eq),
    queueState: (server, priority) => {
      const eq = this.kernel(
        () => this.device.getQueueConfig(server, priority),
        () => undefined,
      );
      return { qtoggle: eq.qtoggle, qindex: eq.qindex };
    },
    syncSource: (lisn) => this.syncSource(lisn),
    reset: () => this.reset(),
    esbLoad: (irq, management, offset) => this.device.esbAccess(irq, management, offset, 8, false),
    esbStore: (irq, management, offset, value) =>
      void this.device.esbAccess(irq, management, offset, 8, true, value),
  };

  rtas(call: RtasCallName): { status: number; server: number; priority: number } {
    this.shadow.mutableXics(`ibm,${call.toLowerCase().replace("_", "-")}`);
    throw unimplemented("NATIVE_XICS", "the native backend has no XICS mode");
  }

  dump(): string {
    return dumpController(this.shadow);
  }

  get quiesced(): boolean {
    return this.shadow.quiesced;
  }

  /**
   * Stops the device as QEMU does for a KVM XIVE device (xive.md §6): each valid source's PQ is
   * read with an ESB GET and, unless 01, set to 10 so that triggers latch; the queues' live
   * qtoggle/qindex and the vCPUs' VP state are copied into the shadow, which saves the same PQs;
   * then CTRL/EQ_SYNC. Idempotent.
   */
  quiesce(): { pages: bigint[]; pageSize: number } {
    this.assertVmm();
    if (!this.shadow.quiesced) {
      const xive = this.shadow.mutableXive("quiesce");
      for (const server of xive.connectedServers()) {
        for (let priority = 0; priority < 7; priority++) {
          const eq = this.device.getQueueConfig(server, priority);
          if (eq.qshift !== 0) xive.setQueueConfig(server, priority, eq);
        }
      }
      for (const { server } of this.shadow.connectedVcpus()) xive.setVpState(server, this.getVpState(server));
      for (const { irq } of this.shadow.initialisedSources()) {
        const pq = Number(this.esbLoad(irq, ESB_GET));
        xive.esbLoad(irq, true, ESB_SET_PQ + (pq << 8));
        if (pq !== PQ.OFF) this.esbLoad(irq, ESB_SET_PQ + (PQ.PENDING << 8));
      }
      this.shadow.quiesce();
    }
    this.device.eqSync();
    return this.queuePages(this.shadow.xive("EQ_SYNC").eqSync());
  }

  /**
   * The state in the emulated backend's format: a source whose PQ went 10 → 11 while stopped
   * had a trigger, which the shadow logs as its own stopped trigger before it is exported.
   */
  exportState(): ExportedState {
    if (this.shadow.quiesced) this.logStoppedTriggers();
    return {
      kind: "xive",
      formatVersion: CONTROLLER_STATE_FORMAT_VERSION,
      payload: this.shadow.exportState(),
    };
  }

  private logStoppedTriggers(): void {
    const xive = this.shadow.xive("export");
    for (const { irq } of this.shadow.initialisedSources()) {
      const kernelPq = Number(this.esbLoad(irq, ESB_GET));
      if (kernelPq === PQ.QUEUED && xive.source(irq)!.pq === PQ.PENDING) this.shadow.trigger(irq);
    }
  }

  /**
   * Runs again (xive.md §6 resume): each valid source gets its saved PQ back with a SET_PQ load;
   * a source that latched a trigger while stopped (PQ 11) is triggered once more, as the model
   * replays it (QEMU re-triggers only when the saved PQ was 00). The shadow resumes too.
   */
  resume(): void {
    if (!this.shadow.quiesced) return;
    const xive = this.shadow.xive("resume");
    for (const { irq } of this.shadow.initialisedSources()) {
      const saved = xive.savedPqOf(irq) ?? PQ.OFF;
      const latched = Number(this.esbLoad(irq, ESB_SET_PQ + (saved << 8)));
      if (latched === PQ.QUEUED && saved !== PQ.OFF) this.device.esbAccess(irq, false, 0, 8, true, 0n);
    }
    this.shadow.resume();
  }

  /** Closes the device fd, the RAM mapping and, when owned, the VM (idempotent). */
  close(): void {
    this.device.close();
    this.ram?.unmap();
    if (this.vm.owned) this.vm.close();
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * VP_STATE's u64s hold the TIMA's bytes in memory order (the kernel copies its saved be64 OS
 * word0/1 out as is; QEMU memcpy()s them into regs[TM_QW1_OS]), while the backend interface
 * carries them as big-endian values, NSR in the top byte (xive.md §1.6): swapped on a
 * little-endian host. The swap is its own inverse.
 */
/** What a trigger did, from the PQ its source had before it and the shadow's mask (the kernel does not say). */
function triggerOutcome(pqBefore: number, masked: boolean): keyof TriggerCounts {
  if (pqBefore === PQ.OFF || (pqBefore === PQ.RESET && masked)) return "masked";
  return pqBefore === PQ.RESET ? "delivered" : "coalesced";
}

function timaOrder(word: bigint): bigint {
  if (!LITTLE_ENDIAN) return word;
  let swapped = 0n;
  for (let i = 0; i < 8; i++) swapped = (swapped << 8n) | ((word >> BigInt(8 * i)) & 0xffn);
  return swapped;
}

/** Maps the guest RAM file shared and makes it memslot 0 at guest-physical 0 of an owned VM. */
function mapGuestRam(vm: KvmVm, ram: NativeGuestRam): MappedRegion {
  const fd = openSync(ram.path, "r+");
  try {
    const region = MappedRegion.map(fd, 0, ram.bytes);
    try {
      kernelCall(
        () => vm.setMemoryRegion(RAM_SLOT, 0n, ram.bytes, region.address),
        () => undefined,
      );
      return region;
    } catch (error) {
      region.unmap();
      throw error;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * A queue of a second priority on one vCPU never reaches the kernel. POWER9's KVM device gives a
 * vCPU one escalation interrupt (single escalation, xive-device.ts checkQueueConfig): the 6.1
 * kernel refuses that queue with EBUSY, but its refusal also frees the interrupt the vCPU's
 * first queue holds, and releasing the device afterwards oopses the host
 * (xive_cleanup_single_escalation on the freed interrupt; seen in the POWER9 tier). The shadow
 * answers the kernel's EBUSY instead, once every check the kernel makes first has passed.
 */
function refuseSecondQueue(xive: XiveDevice, server: number, priority: number, eq: KvmXiveEq): void {
  try {
    xive.checkQueueConfig(server, priority, eq);
  } catch (error) {
    if (error instanceof XiveError && error.reason === "SINGLE_ESCALATION_IN_USE") throw error;
  }
}

/** An imported state with queues of two priorities on one vCPU: refused before the kernel sees it. */
function refuseSecondQueues(xive: XiveDevice): void {
  for (const server of xive.connectedServers()) {
    const priorities = [0, 1, 2, 3, 4, 5, 6].filter((p) => xive.getQueueConfig(server, p) !== undefined);
    if (priorities.length <= 1) continue;
    throw new XiveError({
      code: "FAILED_PRECONDITION",
      reason: "SINGLE_ESCALATION_IN_USE",
      message:
        `vCPU server ${server} has queues of priorities ${priorities.join(", ")}: the KVM XIVE device ` +
        "of a POWER9 host gives a vCPU one escalation interrupt, so one queue priority",
      errno: Errno.EBUSY,
      field: "sections.payload",
    });
  }
}

/** FAILED_PRECONDITION MODE_UNAVAILABLE for a controller mode other than XIVE. */
function requireXiveMode(mode: string, field: string): void {
  if (mode === "XIVE") return;
  throw new XiveError({
    code: "FAILED_PRECONDITION",
    reason: "MODE_UNAVAILABLE",
    message: `the native backend is the KVM XIVE device: a controller in ${mode} mode needs the emulated backend`,
    field,
  });
}

/** FAILED_PRECONDITION with the probe's reason where the KVM XIVE device is not available. */
export function requireNativeXive(host: NativeXiveHost, field = "controller.backend"): void {
  const probe = probeNativeXive(host);
  if (probe.available) return;
  throw new XiveError({
    code: "FAILED_PRECONDITION",
    reason: probe.unavailableCode || "NATIVE_BACKEND_UNAVAILABLE",
    message: `the native backend is not available on this host: ${probe.unavailableReason}`,
    field,
  });
}
