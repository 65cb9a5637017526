import type { GuestMemory } from "@vplane/guest-memory";
import type { ListGrowth } from "./device-state/list-growth.js";
import type { XiveChanges } from "./device-state/xive-changes.js";
import { StoppedTriggers } from "./stopped-triggers.js";
import { ContextRegisters } from "./context-registers.js";
import type { XiveQueueState, XiveSourceState, XiveState } from "./device-state/controller-state.js";
import {
  applyXiveChanges,
  applyXiveState,
  captureXiveState,
  sourceRecord,
  type XiveParts,
} from "./device-state/xive-state.js";
import {
  EAS_HI_END_INDEX,
  EAS_HI_VALID,
  EAS_LO_EISN,
  EAS_LO_MASKED,
  encodeEasHi,
  encodeEasLo,
  endIndexOf,
} from "./eas.js";
import { EndTable, queueSlots } from "./end-table.js";
import { Errno } from "@vplane/model-kit";
import { PQ, decodeEsbLoad, setPqValueOf } from "./esb.js";
import {
  KVM_XIVE_EQ_ALWAYS_NOTIFY,
  KVM_XIVE_LEVEL_ASSERTED,
  KVM_XIVE_LEVEL_SENSITIVE,
  KVM_XIVE_NR_IRQS,
  SOURCE_BLOCK_SHIFT,
  SOURCES_PER_BLOCK,
  decodeKvmSourceConfig,
  isKvmPriorityValid,
  type KvmXiveEq,
} from "./kvm-attributes.js";
import { DEFAULT_MAX_VCPUS, DEFAULT_MAX_VCPU_IDS, checkNrServers } from "./nr-servers.js";
import { PseriesIrq } from "./pseries-layout.js";
import { RequestedEnds } from "./requested-ends.js";
import { restoredTargets, type RestoredTargets } from "./restore-targeting.js";
import { STATUS_ASSERTED, STATUS_LSI, STATUS_PQ, SourceTable } from "./source-table.js";
import { TM_SHIFT, ThreadContext, TimaPage, allOnes, type SignalSink } from "./thread-context.js";
import { VcpuRegistry, serverNotConnected, vcpuNotConnected } from "./vcpu-registry.js";
import { XiveError, kvmError } from "./xive-error.js";
import { XiveRouter, type TriggerOutcomeValue } from "./xive-router.js";
import { XiveSource } from "./xive-source.js";

/** Limits and platform choices of one XIVE device; every one has the value QEMU/KVM use. */
export interface XiveDeviceOptions {
  /**
   * The LISN space the hypercalls and the ESB MMIO window cover (QEMU's nr_irqs, default 0x2000,
   * xive.md §7); at most 1,048,576. The KVM SOURCE attribute accepts any irq below 1,048,576.
   */
  nrIrqs?: number;
  /** KVM_MAX_VCPUS: NR_SERVERS above it is clamped; server numbers must be below it (default 2048). */
  maxVcpus?: number;
  /** KVM_MAX_VCPU_IDS: NR_SERVERS above it is refused with EINVAL (default 8 × 2048). */
  maxVcpuIds?: number;
  /** Host page size (log2) the KVM EQ_CONFIG check compares the queue with (default 16, 64 KiB). */
  hostPageShift?: number;
  /** XIVE_SRC_STORE_EOI: store-EOI on the management page works (default false, as on sPAPR). */
  storeEoi?: boolean;
  /** hv-prio: priorities at or above it are reserved for the hypercalls (default 7, xive.md §7). */
  hvPriority?: number;
  /** Receives each vCPU's exception line changes (raised / lowered). */
  onSignal?: SignalSink;
}

/** A source's state as a caller reads it. */
export interface SourceState {
  irq: number;
  lsi: boolean;
  asserted: boolean;
  pq: number;
  masked: boolean;
  /** Target server and priority from the EAS's END index (meaningful when not masked). */
  server: number;
  priority: number;
  eisn: number;
}

function isIndex(value: number, limit: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < limit;
}

/**
 * One VM's XIVE interrupt controller in exploitation mode: the sources (ESB), the router (EAS,
 * END, event queues in guest RAM) and a presenter per vCPU (TIMA OS ring). Its controls are the
 * KVM XIVE device's (xive.md §1); spapr-hcalls.ts gives the guest's H_INT_* face over the same
 * state; the ESB and TIMA accessors are the MMIO pages. Pure and synchronous.
 */
export class XiveDevice {
  readonly nrIrqs: number;
  readonly maxVcpus: number;
  readonly maxVcpuIds: number;
  readonly hostPageShift: number;
  readonly storeEoi: boolean;
  readonly hvPriority: number;
  readonly sources = new SourceTable();
  /** Thread contexts indexed by server number. */
  readonly contexts: (ThreadContext | undefined)[] = [];
  /** Their registers, in chunks pre-copy compares whole. */
  readonly contextRegisters = new ContextRegisters();
  readonly router: XiveRouter;
  /**
   * The interrupt source engine (the IVSE; QEMU's XiveSource): device-side triggers, the ESB
   * pages, the quiesce latch.
   */
  readonly sourceEngine: XiveSource;
  /** OV5_XIVE_EXPLOIT negotiated at CAS: until then every H_INT_* returns H_FUNCTION (xive.md §2). */
  xiveSelected = false;
  private servers: number;
  /** vCPU id → server, for the vCPUs connected (KVM_ENABLE_CAP). */
  private readonly vcpus = new VcpuRegistry();
  /**
   * QEMU's EAT END of the sources this device routes elsewhere: the END a guest's
   * H_INT_SET_SOURCE_CONFIG asked for where the KVM device picked another vCPU (spapr-hcalls.ts),
   * or a restored state's where the restore did (restore-targeting.ts). Saved with the state.
   */
  readonly requestedEnds = new RequestedEnds();
  /** Server → the priority whose queue attached the vCPU's one escalation interrupt (checkQueueConfig). */
  private readonly escalations = new Map<number, number>();
  private readonly signal: SignalSink;

  constructor(
    readonly memory: GuestMemory,
    options: XiveDeviceOptions = {},
  ) {
    this.nrIrqs = options.nrIrqs ?? PseriesIrq.DEFAULT_NR_IRQS;
    if (!isIndex(this.nrIrqs - 1, KVM_XIVE_NR_IRQS)) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "NR_IRQS_OUT_OF_RANGE",
        message: `nr_irqs must be 1..${KVM_XIVE_NR_IRQS}, got ${this.nrIrqs}`,
        errno: Errno.EINVAL,
        field: "nr_irqs",
      });
    }
    this.maxVcpus = options.maxVcpus ?? DEFAULT_MAX_VCPUS;
    this.maxVcpuIds = options.maxVcpuIds ?? DEFAULT_MAX_VCPU_IDS;
    this.hostPageShift = options.hostPageShift ?? 16;
    this.storeEoi = options.storeEoi ?? false;
    this.hvPriority = options.hvPriority ?? 7;
    this.servers = this.maxVcpus; // NR_SERVERS default: KVM_MAX_VCPUS (xive.md §1.2)
    this.signal = options.onSignal ?? (() => undefined);
    this.router = new XiveRouter(this.contexts, undefined);
    this.sourceEngine = new XiveSource(this.sources, this.router, this.storeEoi);
  }

  /** Number of server ids (NR_SERVERS). */
  get nrServers(): number {
    return this.servers;
  }

  /** The END table exists once the VP block is allocated (first vCPU connect). */
  get ends(): EndTable | undefined {
    return this.router.ends;
  }

  /** Servers of the connected vCPUs, ascending. */
  connectedServers(): number[] {
    return this.vcpus.connectedServers();
  }

  /** vCPU ids and their servers, ascending by vCPU id. */
  connectedVcpus(): { vcpuId: number; server: number }[] {
    return this.vcpus.entries();
  }

  context(server: number): ThreadContext | undefined {
    return isIndex(server, this.contexts.length) ? this.contexts[server] : undefined;
  }

  // ---------------------------------------------------------------- KVM device controls (§1)

  /**
   * CTRL/NR_SERVERS (xive.md §1.2): 0 or above KVM_MAX_VCPU_IDS → EINVAL; once the VP block is
   * allocated → EBUSY; above KVM_MAX_VCPUS it is clamped.
   */
  setNrServers(value: number): void {
    this.servers = checkNrServers(value, this.maxVcpus, this.maxVcpuIds, this.router.ends !== undefined);
  }

  /**
   * KVM_ENABLE_CAP(KVM_CAP_PPC_IRQ_XIVE) on a vCPU (xive.md §1.1): EBUSY if the vCPU already has
   * an interrupt controller; EINVAL if the (packed) server is not below nr_servers; the VP block
   * is allocated at the first connect; EEXIST if another vCPU has the server.
   */
  connectVcpu(vcpuId: number, server: number = vcpuId): void {
    // kvmppc_pack_vcpu_id is the identity below KVM_MAX_VCPUS (VSMT 1); above, the kernel
    // cannot pack the id and it is refused here.
    this.vcpus.checkConnect(vcpuId, server, Math.min(this.servers, this.maxVcpus));
    if (this.router.ends === undefined) this.router.ends = new EndTable(this.servers << 3, this.memory);
    this.vcpus.add(vcpuId, server, this.contexts[server] !== undefined);
    this.contexts[server] = new ThreadContext(server, this.signal, this.contextRegisters.of(server));
  }

  /**
   * SOURCE (xive.md §1.2): creates or re-inits source `irq` from the KVM value (bit 0 LSI, bit 1
   * asserted): valid, masked, PQ=01. irq ≥ 1,048,576 → E2BIG.
   */
  setSource(irq: number, value: bigint): void {
    if (!isIndex(irq, KVM_XIVE_NR_IRQS)) {
      throw kvmError(
        Errno.E2BIG,
        "OUT_OF_RANGE",
        "SOURCE_OUT_OF_RANGE",
        `source ${irq} is not below ${KVM_XIVE_NR_IRQS}`,
        "irq",
      );
    }
    const lsi = (value & KVM_XIVE_LEVEL_SENSITIVE) !== 0n;
    this.sources.create(irq, lsi, lsi && (value & KVM_XIVE_LEVEL_ASSERTED) !== 0n);
  }

  /** SOURCE with named fields. */
  initSource(irq: number, kind: { lsi?: boolean; asserted?: boolean } = {}): void {
    this.setSource(
      irq,
      (kind.lsi ? KVM_XIVE_LEVEL_SENSITIVE : 0n) | (kind.asserted ? KVM_XIVE_LEVEL_ASSERTED : 0n),
    );
  }

  /**
   * SOURCE_CONFIG (xive.md §1.2, §1.3): ENOENT without a block, EINVAL for an invalid source or
   * priority 7; unchanged (server, priority, eisn) is a no-op; masked clears the target; else
   * the target is selected as KVM does and may differ from the one asked for. Returns the
   * effective server.
   */
  setSourceConfig(irq: number, value: bigint): number {
    this.checkSourceForKvm(irq);
    const config = decodeKvmSourceConfig(value);
    if (!isKvmPriorityValid(config.priority)) {
      throw kvmError(
        Errno.EINVAL,
        "INVALID_ARGUMENT",
        "PRIORITY_RESERVED",
        `priority ${config.priority} is reserved (KVM uses 7 for escalations)`,
        "priority",
      );
    }
    const hi = this.sources.easHi(irq);
    const lo = this.sources.easLo(irq);
    const masked = (lo & EAS_LO_MASKED) !== 0;
    const actServer = masked ? 0 : (hi & EAS_HI_END_INDEX) >>> 3;
    const actPriority = masked ? 0xff : hi & 7;
    const actEisn = masked ? 0 : lo & EAS_LO_EISN;
    if (actServer === config.server && actPriority === config.priority && actEisn === config.eisn)
      return actServer;
    if (config.masked) {
      this.sources.setEas(irq, EAS_HI_VALID, EAS_LO_MASKED);
      return 0;
    }
    const server = this.selectTarget(config.server, config.priority);
    this.sources.setEas(
      irq,
      encodeEasHi(true, 0, endIndexOf(server, config.priority)),
      encodeEasLo(false, config.eisn),
    );
    return server;
  }

  /**
   * SOURCE_CONFIG as a restore gives it (QEMU's post_load, hw/intc/spapr_xive_kvm.c
   * kvmppc_xive_post_load): `value` names QEMU's END, which the device selects from as for any
   * SOURCE_CONFIG, and which is kept apart (requestedEnds) where it routes the source elsewhere,
   * as restoreState keeps it. Returns the effective server.
   */
  restoreSourceConfig(irq: number, value: bigint): number {
    const server = this.setSourceConfig(irq, value);
    const config = decodeKvmSourceConfig(value);
    if (!config.masked)
      this.requestedEnds.record(this.sources, irq, endIndexOf(config.server, config.priority));
    else this.requestedEnds.forget(irq);
    return server;
  }

  /**
   * kvmppc_xive_select_target (xive.md §1.3): the requested vCPU's queue if it has a page and
   * room (entries − XIVE_Q_GAP sources), else the first vCPU whose queue at that priority does;
   * an unknown server → EINVAL; none → EBUSY.
   */
  private selectTarget(server: number, priority: number): number {
    if (this.context(server) === undefined) {
      throw serverNotConnected(server, Errno.EINVAL, "INVALID_ARGUMENT");
    }
    if (this.tryPickQueue(server, priority)) return server;
    for (const { server: candidate } of this.connectedVcpus()) {
      if (this.tryPickQueue(candidate, priority)) return candidate;
    }
    throw this.noQueueFor(priority);
  }

  /**
   * Why no queue took the source, and what the caller can do; EBUSY either way, as KVM. A queue's
   * slots are KVM's rule (xive_try_pick_queue): each routing that changes a source's server,
   * priority or EISN takes one, and none comes back, not on re-routing, masking, a queue reset or
   * CTRL RESET; only a new device (its vCPUs' contexts freed) starts afresh.
   */
  private noQueueFor(priority: number): XiveError {
    const ends = this.router.ends!;
    const queues = this.connectedVcpus()
      .map(({ server }) => endIndexOf(server, priority))
      .filter((index) => ends.isEnqueue(index));
    if (queues.length === 0) {
      return kvmError(
        Errno.EBUSY,
        "RESOURCE_EXHAUSTED",
        "NO_QUEUE_AVAILABLE",
        `no connected vCPU has a priority ${priority} queue: configure one (ConfigureQueue) or route the ` +
          `source at a priority that has one`,
        "priority",
      );
    }
    const slots = queues.map((index) => queueSlots(ends.qshiftOf(index)));
    return kvmError(
      Errno.EBUSY,
      "RESOURCE_EXHAUSTED",
      "QUEUE_SLOTS_EXHAUSTED",
      `the ${queues.length} priority ${priority} queue(s) have used all their source slots ` +
        `(${slots.join(", ")}): as in KVM, every routing that changes a source's server, priority or ` +
        `EISN takes a slot of the queue it lands on, and re-routing, masking or resetting never gives ` +
        `one back, so retrying fails the same way. Leave unchanged sources out of re-configurations ` +
        `(they take no slot); to route more, give a connected vCPU that has no queue yet a priority ` +
        `${priority} queue (KVM then picks it), or recreate the controller (DeleteController, ` +
        `CreateController), which starts with fresh slots`,
      "priority",
    );
  }

  private tryPickQueue(server: number, priority: number): boolean {
    const ends = this.router.ends!;
    const index = endIndexOf(server, priority);
    if (!ends.isEnqueue(index)) return false; // no queue page: -ENXIO, the search goes on
    if (ends.kvmCount[index]! >= queueSlots(ends.qshiftOf(index))) return false;
    ends.countTarget(index);
    return true;
  }

  /**
   * EQ_CONFIG set (xive.md §1.4), every check before any change: ENOENT unknown server, EINVAL
   * priority 7; qshift 0 resets the queue; flags must be exactly ALWAYS_NOTIFY; qshift must be
   * 16; qaddr aligned; the queue must fit a host page and guest RAM (EINVAL); qtoggle/qindex
   * are restored only when they are not the initial 1/0. A qindex at or past the queue's entry
   * count is accepted, as KVM accepts it (Linux arch/powerpc/kvm/book3s_xive_native.c,
   * kvmppc_xive_native_set_queue_config, passes it unchecked to xive_native_set_queue_state;
   * skiboot hw/xive.c opal_xive_set_queue_state stores it masked to 22 bits): the next event
   * wraps into the queue (EndTable.enqueue), never past it. A second priority's queue on one
   * vCPU is EBUSY (single escalation, checkQueueConfig).
   */
  setQueueConfig(server: number, priority: number, eq: KvmXiveEq): void {
    const index = this.checkQueueConfig(server, priority, eq);
    const ends = this.router.ends!;
    if (eq.qshift === 0) {
      // The queue is disabled; the escalation interrupt it may hold stays attached.
      const attached = this.escalationOf(server);
      if (attached !== undefined) this.escalations.set(server, attached);
      ends.reset(index);
      return;
    }
    ends.configure(index, Number(BigInt.asUintN(64, eq.qaddr)), eq.qshift, true, server);
    this.escalations.set(server, priority);
    // OPAL stores the fields masked to their widths (1-bit toggle, 22-bit offset).
    if (eq.qtoggle !== 1 || eq.qindex !== 0) ends.setQueueState(index, eq.qtoggle & 1, eq.qindex);
  }

  /**
   * EQ_CONFIG set's checks, in the kernel's order, without a change; returns the END index.
   * The last is the vCPU's escalation interrupt: POWER9's OPAL has single escalation (skiboot
   * hw/xive.c always advertises "single-escalation-support"), so the KVM device gives all of a
   * vCPU's queues one escalation interrupt, attached with the first queue that gets a page and
   * kept until RESET (even when that queue is disabled); a queue of another priority asks for
   * it again and request_irq refuses it: EBUSY (Linux book3s_xive.c
   * kvmppc_xive_attach_escalation, "Flags mismatch"; on 6.1 the refused attachment also frees
   * the interrupt the first queue holds, and releasing the device then oopses).
   */
  checkQueueConfig(server: number, priority: number, eq: KvmXiveEq): number {
    const index = this.checkQueueForKvm(server, priority);
    if (eq.qshift === 0) return index;
    const einval = (reason: string, message: string, field: string) =>
      kvmError(Errno.EINVAL, "INVALID_ARGUMENT", reason, message, field);
    if (eq.flags !== KVM_XIVE_EQ_ALWAYS_NOTIFY) {
      throw einval("EQ_FLAGS_INVALID", `flags must be ALWAYS_NOTIFY (1), got ${eq.flags}`, "flags");
    }
    if (eq.qshift !== 16)
      throw einval("EQ_SIZE_INVALID", `qshift must be 16 (or 0), got ${eq.qshift}`, "qshift");
    const size = 1n << BigInt(eq.qshift);
    const qaddr = BigInt.asUintN(64, eq.qaddr);
    if ((qaddr & (size - 1n)) !== 0n) {
      throw einval("EQ_MISALIGNED", `qaddr 0x${qaddr.toString(16)} is not aligned to ${size}`, "qaddr");
    }
    if (eq.qshift > this.hostPageShift) {
      throw einval("EQ_LARGER_THAN_PAGE", `a ${size}-byte queue exceeds the host page`, "qshift");
    }
    if (qaddr + size > BigInt(this.memory.size)) {
      throw einval("EQ_NOT_IN_GUEST_RAM", `queue at 0x${qaddr.toString(16)} is outside guest RAM`, "qaddr");
    }
    const attached = this.escalationOf(server);
    if (attached !== undefined && attached !== priority) {
      throw kvmError(
        Errno.EBUSY,
        "FAILED_PRECONDITION",
        "SINGLE_ESCALATION_IN_USE",
        `vCPU server ${server} has its one escalation interrupt on its priority ${attached} queue: ` +
          `a queue of priority ${priority} cannot have one too (single escalation; RESET frees it)`,
        "priority",
      );
    }
    return index;
  }

  /**
   * The priority whose queue holds a vCPU's escalation interrupt: the one recorded since the
   * last RESET, else that of a queue it has (a restored device attached it when its queues were
   * replayed, xive.md §6 post_load).
   */
  private escalationOf(server: number): number | undefined {
    const recorded = this.escalations.get(server);
    if (recorded !== undefined) return recorded;
    const ends = this.router.ends!;
    for (let priority = 0; priority < 7; priority++) {
      if (ends.isEnqueue(endIndexOf(server, priority))) return priority;
    }
    return undefined;
  }

  /**
   * EQ_CONFIG get (xive.md §1.4 step 7): undefined when the queue has no page (KVM returns 0
   * without writing the buffer), else flags, qshift, qaddr and the live qtoggle/qindex.
   */
  getQueueConfig(server: number, priority: number): KvmXiveEq | undefined {
    const index = this.checkQueueForKvm(server, priority);
    const ends = this.router.ends!;
    if (!ends.isEnqueue(index)) return undefined;
    const end = ends.read(index);
    return {
      flags: end.unconditionalNotify ? KVM_XIVE_EQ_ALWAYS_NOTIFY : 0,
      qshift: end.qshift,
      qaddr: BigInt(end.qaddr),
      qtoggle: end.generation,
      qindex: end.qindex,
    };
  }

  private checkQueueForKvm(server: number, priority: number): number {
    if (this.context(server) === undefined) {
      throw serverNotConnected(server, Errno.ENOENT, "NOT_FOUND");
    }
    if (!isKvmPriorityValid(priority)) {
      throw kvmError(
        Errno.EINVAL,
        "INVALID_ARGUMENT",
        "PRIORITY_RESERVED",
        `priority ${priority} is reserved (KVM uses 7 for escalations)`,
        "priority",
      );
    }
    return endIndexOf(server, priority);
  }

  private checkSourceForKvm(irq: number): void {
    if (!this.sources.hasBlock(irq)) {
      throw kvmError(
        Errno.ENOENT,
        "NOT_FOUND",
        "SOURCE_BLOCK_NOT_FOUND",
        `no source block holds source ${irq}`,
        "irq",
      );
    }
    if (!this.sources.isValid(irq)) {
      throw kvmError(
        Errno.EINVAL,
        "FAILED_PRECONDITION",
        "SOURCE_NOT_VALID",
        `source ${irq} has not been initialised`,
        "irq",
      );
    }
  }

  /** SOURCE_SYNC (xive.md §1.2): ENOENT without a block, EINVAL if invalid; nothing is in flight here. */
  syncSource(irq: number): void {
    this.checkSourceForKvm(irq);
  }

  /**
   * CTRL/RESET (xive.md §1.2): every valid, unmasked source gets eisn 0, PQ 01 and a MASKED EAS;
   * every connected vCPU's queues 0-7 are torn down. Masked sources keep their PQ.
   */
  reset(): void {
    this.sources.forEachValid((_irq, block, i) => {
      if (block.easLo[i]! & EAS_LO_MASKED) return;
      block.written = true;
      block.status[i] = (block.status[i]! & ~STATUS_PQ) | PQ.OFF;
      block.easHi[i] = EAS_HI_VALID;
      block.easLo[i] = EAS_LO_MASKED;
    });
    this.escalations.clear();
    const ends = this.router.ends;
    if (!ends) return;
    for (const server of this.vcpus.connectedServers()) {
      for (let priority = 0; priority < 8; priority++) ends.reset(endIndexOf(server, priority));
    }
  }

  /**
   * H_INT_RESET's cold reset of QEMU's emulated device (QEMU spapr_xive_reset + source reset,
   * xive.md §2): the tables as resetHcallTables, and every valid source back to PQ 01.
   */
  coldReset(): void {
    this.resetHcallTables(); // marks every block with a valid source written
    this.sources.forEachValid((_irq, block, i) => {
      block.status[i] = (block.status[i]! & ~STATUS_PQ) | PQ.OFF;
    });
  }

  /**
   * What H_INT_RESET resets of the tables QEMU keeps beside the KVM device (QEMU spapr_xive_reset
   * and the source status, xive.md §2): every valid EAS becomes VALID|MASKED (target and EISN
   * dropped), every END is reset, ASSERTED is cleared (the LSI setting is kept). The PQ bits are
   * the device's: its RESET, which the hypercall runs first, sets 01 on the sources it unmasked.
   */
  resetHcallTables(): void {
    this.sources.forEachValid((_irq, block, i) => {
      block.written = true;
      block.status[i] = block.status[i]! & ~STATUS_ASSERTED;
      block.easHi[i] = EAS_HI_VALID;
      block.easLo[i] = EAS_LO_MASKED;
    });
    const ends = this.router.ends;
    if (ends) for (let index = 0; index < ends.size; index++) ends.reset(index);
  }

  /**
   * CTRL/EQ_SYNC (xive.md §1.2): syncs the valid unmasked sources (nothing is in flight in the
   * model) and marks every configured queue's pages dirty in guest RAM for migration. Returns
   * the dirty-log page numbers it marked, ascending.
   */
  eqSync(): number[] {
    const ends = this.router.ends;
    if (!ends) return [];
    const pageSize = this.memory.pageSize;
    // Queues usually sit in ascending, disjoint pages: collect in order, sort only if they do not.
    const queues: number[] = [];
    let count = 0;
    for (const server of this.vcpus.connectedServers()) {
      for (let priority = 0; priority < 8; priority++) {
        const index = endIndexOf(server, priority);
        if (!ends.isEnqueue(index)) continue;
        const qaddr = ends.qaddr[index]!;
        const size = 1 << ends.qshiftOf(index);
        this.memory.markDirty(qaddr, size);
        queues.push(index);
        count += Math.ceil((qaddr + size) / pageSize) - Math.floor(qaddr / pageSize);
      }
    }
    const pages = new Array<number>(count);
    let at = 0;
    let ordered = true;
    for (const index of queues) {
      const qaddr = ends.qaddr[index]!;
      const first = Math.floor(qaddr / pageSize);
      const end = Math.ceil((qaddr + (1 << ends.qshiftOf(index))) / pageSize);
      if (at > 0 && first <= pages[at - 1]!) ordered = false;
      for (let page = first; page < end; page++) pages[at++] = page;
    }
    if (ordered) return pages;
    pages.sort((a, b) => a - b);
    return pages.filter((page, i) => i === 0 || page !== pages[i - 1]);
  }

  // ---------------------------------------------------------------- migration (§6)

  /** Quiesced for migration: triggers are latched, not forwarded (xive.md §6). */
  get quiesced(): boolean {
    return this.sourceEngine.stopped !== undefined;
  }

  /**
   * Stops the device as QEMU's change-state handler stops it (xive.md §6): the sources latch
   * (XiveSource.quiesce). Idempotent. No EQ_SYNC: nothing is in flight in the model, and the queue
   * pages it wrote are in its guest memory's dirty log (InterruptController.quiesce reports them).
   */
  quiesce(): void {
    this.sourceEngine.quiesce();
  }

  /** The PQ source `irq` had when the device was quiesced (undefined when running). */
  savedPqOf(irq: number): number | undefined {
    return this.sourceEngine.savedPqOf(irq);
  }

  /** Runs again, replaying what arrived while quiesced (XiveSource.resume). No-op when running. */
  resume(): void {
    this.sourceEngine.resume();
  }

  /** The quiesced device's state in the saved format (QEMU's pre_save, xive.md §6). */
  captureState(): XiveState {
    return captureXiveState(this.savedParts());
  }

  /** Valid source `irq`'s record as captureState gives it now. */
  savedSource(irq: number): XiveSourceState {
    const b = irq >>> SOURCE_BLOCK_SHIFT;
    return sourceRecord(
      irq,
      this.sources.blocks[b]!,
      irq & (SOURCES_PER_BLOCK - 1),
      this.sourceEngine.stopped?.savedPq.get(b),
      this.requestedEnds,
    );
  }

  /**
   * Applies a checked saved state to this fresh device, whose vCPUs are connected and sources
   * created (QEMU's post_load order, xive.md §6); the device is left quiesced. A source goes
   * where KVM's restore puts it when given QEMU's END (restore-targeting.ts), or the restore
   * fails EBUSY before any change; one put elsewhere keeps that END in requestedEnds.
   */
  restoreState(state: XiveState, stoppedTriggers: readonly number[]): void {
    const targets = this.restoredTargets(state.queues, [], state.sources);
    this.xiveSelected = state.xiveSelected;
    applyXiveState(this.savedParts(), state, stoppedTriggers);
    this.retarget(targets, state.sources);
  }

  /**
   * Applies a stop delta's records (checked against this device, check-stop-delta.ts) to this
   * quiesced device in place, with the triggers logged while the source was stopped, after
   * connecting the vCPUs and initialising the sources of the lists' `growth` (each then has a
   * record): the device then is what restoreState of the merged state makes on a device built
   * with the grown lists (a source left without a queue page moves or fails EBUSY, before any
   * change, the same way; one moved before goes back when the queue of its QEMU END can take it).
   */
  applyChanges(changes: XiveChanges, stoppedTriggers: readonly number[], growth?: ListGrowth): void {
    const { queues, sources, contexts } = changes;
    // The END table the first vCPU allocates, made before the EBUSY check and attached after it.
    const ends =
      this.router.ends ?? (growth?.vcpus.length ? new EndTable(this.servers << 3, this.memory) : undefined);
    const servers = (growth?.vcpusAfter ?? this.connectedVcpus()).map(({ server }) => server);
    const targets = this.restoredTargets(queues.changed, queues.removed, sources.changed, ends, servers);
    this.router.ends = ends;
    for (const { vcpuId, server } of growth?.vcpus ?? []) this.connectVcpu(vcpuId, server);
    // A source initialised anew; one whose LSI setting changed takes it from its record.
    for (const { irq, lsi } of growth?.sources ?? [])
      if (!this.sources.isValid(irq)) this.initSource(irq, { lsi });
    const stopped = this.sourceEngine.stopped!;
    this.sourceEngine.stopped = { savedPq: stopped.savedPq, triggers: StoppedTriggers.from(stoppedTriggers) };
    applyXiveChanges(this.savedParts(), queues.changed, queues.removed, sources.changed, contexts.changed);
    this.retarget(targets, sources.changed);
  }

  /**
   * Where a KVM restore of these records puts the sources (restore-targeting.ts), with the END
   * table and the vCPUs' servers (in KVM's kvm_for_each_vcpu order, selectTarget's) the apply
   * leaves; EBUSY, before any change, when no queue takes one.
   */
  private restoredTargets(
    queues: readonly XiveQueueState[],
    removedQueues: readonly number[],
    sources: readonly XiveSourceState[],
    ends = this.router.ends,
    servers = this.connectedVcpus().map(({ server }) => server),
  ): RestoredTargets | undefined {
    if (ends === undefined) return undefined; // no vCPU: no queue, and no source routed (decode)
    const target = { sources: this.sources, ends, servers, requested: this.requestedEnds };
    return restoredTargets(target, queues, removedQueues, sources);
  }

  /**
   * Routes the sources where KVM's restore put them and takes its counts, keeping QEMU's END of
   * each it put elsewhere; without a replay, the sources whose records were applied are where
   * their state says, as is their QEMU END (restoredTargets replays any record whose is not).
   */
  private retarget(targets: RestoredTargets | undefined, records: readonly XiveSourceState[]): void {
    if (targets === undefined) {
      if (this.requestedEnds.size > 0) for (const { irq } of records) this.requestedEnds.forget(irq);
      return;
    }
    for (const { irq, endIndex } of targets.routes) {
      const eisn = this.sources.easLo(irq) & EAS_LO_EISN;
      this.sources.setEas(irq, encodeEasHi(true, 0, endIndex), encodeEasLo(false, eisn));
    }
    // The replay placed every routed source: what it moved is all that is kept apart.
    this.requestedEnds.clear();
    for (const [irq, end] of targets.moved) this.requestedEnds.record(this.sources, irq, end);
    const ends = this.router.ends!;
    ends.kvmCount.set(targets.counts);
    ends.written.fill(1);
  }

  /** The blocks its saved state is captured from (and pre-copy compares). */
  savedParts(): XiveParts {
    const connected = () => this.connectedServers().map((server) => this.contexts[server]!);
    return {
      source: this.sourceEngine,
      ends: this.router.ends,
      // Listed when read (capture, apply), not on every pre-copy read: 2,048 vCPUs sorted.
      get contexts() {
        return connected();
      },
      contextRegisters: this.contextRegisters,
      xiveSelected: this.xiveSelected,
      requestedEnds: this.requestedEnds,
    };
  }

  /**
   * KVM_GET_ONE_REG(VP_STATE) (xive.md §1.6): [0] = OS ring word0/1 (NSR..PIPR, big-endian),
   * [1] unused. ENOENT when the vCPU has no XIVE context.
   */
  getVpState(server: number): [bigint, bigint] {
    return [this.requireContext(server).osWord01(), 0n];
  }

  /** KVM_SET_ONE_REG(VP_STATE): stores word0/1 only (xive.md §1.6). */
  setVpState(server: number, state: readonly [bigint, bigint]): void {
    this.requireContext(server).setOsWord01(BigInt.asUintN(64, state[0]));
  }

  private requireContext(server: number): ThreadContext {
    const context = this.context(server);
    if (context === undefined) {
      throw vcpuNotConnected(server, "NOT_FOUND");
    }
    return context;
  }

  // ---------------------------------------------------------------- device side (irqfd)

  /** A device raises source `irq` (an MSI, or asserting an LSI): xive_source_set_irq(irq, 1). */
  trigger(irq: number): TriggerOutcomeValue {
    return this.sourceEngine.setIrq(irq, true);
  }

  /** xive_source_set_irq: a device sets source `irq`'s line (see XiveSource.setIrq). */
  setIrq(irq: number, level: boolean): TriggerOutcomeValue {
    return this.sourceEngine.setIrq(irq, level);
  }

  // ---------------------------------------------------------------- ESB pages (§1.5, §3)

  /** An 8-byte load from a source's ESB page (see XiveSource.esbLoad). */
  esbLoad(irq: number, managementPage: boolean, offset: number, size = 8): bigint {
    return this.sourceEngine.esbLoad(irq, managementPage, offset, size);
  }

  /** An 8-byte store to a source's ESB page (see XiveSource.esbStore). */
  esbStore(
    irq: number,
    managementPage: boolean,
    offset: number,
    value: bigint,
    size = 8,
  ): TriggerOutcomeValue | undefined {
    return this.sourceEngine.esbStore(irq, managementPage, offset, value, size);
  }

  /**
   * END ESB load (the page H_INT_GET_QUEUE_INFO returns): even page ESn, odd page ESe; EOI,
   * GET and SET_PQ as for sources; an invalid END reads all ones (QEMU xive_end_source_read).
   */
  endEsbLoad(endIndex: number, escalation: boolean, offset: number): bigint {
    const ends = this.router.ends;
    if (ends === undefined || !isIndex(endIndex, ends.size) || !ends.isValid(endIndex)) return allOnes(8);
    switch (decodeEsbLoad(offset)) {
      case "EOI":
        return BigInt(ends.eoiEsb(endIndex, escalation));
      case "GET":
        return BigInt(ends.esbOf(endIndex, escalation));
      case "SET_PQ": {
        const old = ends.esbOf(endIndex, escalation);
        ends.setEsb(endIndex, escalation, setPqValueOf(offset & 0xfff));
        return BigInt(old);
      }
    }
  }

  // ---------------------------------------------------------------- TIMA (§1.5, §5)

  private timaContext(server: number, offset: number, size: number): ThreadContext {
    const context = this.context(server);
    if (context === undefined) {
      throw vcpuNotConnected(server);
    }
    if (!isIndex(offset, 4 << TM_SHIFT)) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "TIMA_OFFSET_OUT_OF_RANGE",
        message: `TIMA offset must be below 0x40000, got ${offset}`,
        field: "offset",
      });
    }
    if (offset >>> TM_SHIFT !== TimaPage.OS) {
      // KVM maps only the OS page; HW, HV and USER pages fault with SIGBUS (xive.md §1.5).
      throw new XiveError({
        code: "FAILED_PRECONDITION",
        reason: "TIMA_PAGE_FAULT",
        message: `TIMA page ${offset >>> TM_SHIFT} is not mapped for a guest (SIGBUS)`,
        errno: Errno.ENXIO,
        field: "offset",
      });
    }
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      throw new XiveError({
        code: "INVALID_ARGUMENT",
        reason: "TIMA_ACCESS_SIZE",
        message: `TIMA accesses are 1, 2, 4 or 8 bytes, got ${size}`,
        field: "size",
      });
    }
    return context;
  }

  /** A load from the TIMA at `offset` (page << 16 | offset in page) by the vCPU with `server`. */
  timaLoad(server: number, offset: number, size: number): bigint {
    return this.timaContext(server, offset, size).load(offset & 0xffff, size);
  }

  timaStore(server: number, offset: number, size: number, value: bigint): void {
    this.timaContext(server, offset, size).store(offset & 0xffff, size, BigInt.asUintN(size * 8, value));
  }

  // ---------------------------------------------------------------- introspection

  source(irq: number): SourceState | undefined {
    if (!this.sources.isValid(irq)) return undefined;
    const status = this.sources.status(irq);
    const hi = this.sources.easHi(irq);
    const lo = this.sources.easLo(irq);
    return {
      irq,
      lsi: (status & STATUS_LSI) !== 0,
      asserted: (status & STATUS_ASSERTED) !== 0,
      pq: this.sourceEngine.pqOf(irq),
      masked: (lo & EAS_LO_MASKED) !== 0,
      server: (hi & EAS_HI_END_INDEX) >>> 3,
      priority: hi & 7,
      eisn: lo & EAS_LO_EISN,
    };
  }
}
