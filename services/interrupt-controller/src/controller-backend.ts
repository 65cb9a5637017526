import type { BackendPreCopy } from "@vplane/service-kit";
import type {
  ActiveMode,
  ControllerDelta,
  HcallResult,
  KvmXiveEq,
  SignalSink,
  SourceState,
} from "@vplane/xive";
import type { ControllerRecord } from "./controller-config-store.js";
export type { ControllerSpec } from "./controller-config-store.js";
export type { ExportedState } from "./controller-state-format.js";
import type { ExportedState, ImportedControllerState } from "./controller-state-format.js";
import type { AdoptedVm } from "./native-vmm-handoff.js";

/** The XICS RTAS calls a VMM forwards. */
export type RtasCallName = "SET_XIVE" | "GET_XIVE" | "INT_OFF" | "INT_ON";

/** Per-outcome counts of the triggers one call made (TriggerSources, EsbAccess, SetLsiLevel). */
export interface TriggerCounts {
  delivered: number;
  coalesced: number;
  masked: number;
  dropped: number;
}

export function noTriggers(): TriggerCounts {
  return { delivered: 0, coalesced: 0, masked: 0, dropped: 0 };
}

/** Which implementation backs a controller (its durable record names it). */
export type BackendKind = ControllerRecord["backend"];

/**
 * What opening a backend takes beside the controller's record (backend-factory.ts). A backend
 * that needs more to open (a VMM's handed-over fds) gets an optional field here: the factory's
 * callers do not change.
 */
export interface BackendOpening {
  /** Where relative guest RAM paths resolve. */
  dataDir: string;
  /** Receives the vCPU exception-line changes the backend raises. */
  onSignal: SignalSink;
  /** Open the controller this state describes (quiesced until resume), not a new one. */
  imported?: ImportedControllerState;
  /** The VM a VMM handed over for this VM id, if any (NATIVE works on it instead of its own). */
  handedOver?: (vm: string) => AdoptedVm | undefined;
}

/** Pre-copy change tracking (issue 14) in the state format's delta (libs/xive controller-delta.ts). */
export type ControllerPreCopy = BackendPreCopy<ExportedState>;

/**
 * One VM's interrupt controller as the service drives it, whoever implements it: the emulated
 * model (libs/xive) or the kernel's KVM XIVE device. The service reaches a controller only
 * through this interface, and opens one only through openBackend (backend-factory.ts). Every
 * method has the semantics and the errors of the KVM device or the hypervisor call it is named
 * after; failures are thrown as errors with {code, reason, errno?, hcallReturnCode?}.
 */
export interface ControllerBackend {
  readonly kind: BackendKind;
  readonly activeMode: ActiveMode;
  /**
   * Set when the backend cannot report vCPU exception-line changes (WatchVcpuSignals answers
   * UNIMPLEMENTED with it): the kernel's XIVE device raises them only into a vCPU in KVM_RUN.
   */
  readonly signalsUnavailable?: { reason: string; message: string };
  readonly nrServers: number;
  readonly nrIrqs: number;
  connectedVcpus(): { vcpuId: number; server: number }[];
  sourceCount(): number;
  /** Sources the machine initialised and whether each is an LSI, ascending. */
  initialisedSources(): { irq: number; lsi: boolean }[];

  connectVcpu(vcpuId: number, server: number): void;
  selectMode(mode: ActiveMode): void;
  initSource(irq: number, lsi: boolean, asserted: boolean): void;
  /** KVM SOURCE_CONFIG; returns the effective server. */
  configureSource(irq: number, kvmConfig: bigint): number;
  /**
   * KVM SOURCE_CONFIG as a restore (a restart's replay) gives it: the END it names is QEMU's,
   * kept apart where the device routes the source elsewhere (libs/xive restoreSourceConfig).
   */
  restoreSourceConfig(irq: number, kvmConfig: bigint): number;
  getSource(irq: number): SourceState;
  configureQueue(server: number, priority: number, eq: KvmXiveEq): void;
  getQueueConfig(server: number, priority: number): { eq: KvmXiveEq; entriesWritten: number } | undefined;
  syncSource(irq: number): void;
  /** EQ_SYNC: the guest-physical addresses of the pages marked dirty and the page size. */
  syncQueues(): { pages: bigint[]; pageSize: number };
  reset(): void;
  getVpState(server: number): [bigint, bigint];
  setVpState(server: number, state: [bigint, bigint]): void;
  esbAccess(
    irq: number,
    management: boolean,
    offset: number,
    size: number,
    store: boolean,
    value: bigint,
    /** Gets the outcome of a store that triggers (trigger page, management trigger or inject). */
    counts?: TriggerCounts,
  ): bigint;
  timaAccess(server: number, offset: number, size: number, store: boolean, value: bigint): bigint;
  /** Raises each source in order and adds the outcomes to `counts`. */
  trigger(irqs: readonly number[], counts: TriggerCounts): void;
  /** Sets an LSI's level; an assert is a trigger whose outcome is added to `counts`. */
  setLsiLevel(irq: number, asserted: boolean, counts?: TriggerCounts): void;
  hcall(server: number, opcode: number, args: readonly bigint[]): HcallResult;
  /**
   * What takes back the configuring hypercall about to be made with these arguments once it
   * succeeded (libs/xive hcall-undo.ts; with the KVM device, the device too); undefined when it
   * has none (H_INT_RESET, XICS, reads).
   */
  hcallUndo(opcode: number, args: readonly bigint[]): (() => void) | undefined;
  /** QEMU's END of each source the device routes elsewhere (requested_ends): irq → END index. */
  requestedEnds(): ReadonlyMap<number, number>;
  rtas(
    call: RtasCallName,
    irq: number,
    server: number,
    priority: number,
  ): { status: number; server: number; priority: number };
  dump(): string;
  /** Quiesced for migration (xive.md §6): triggers latched; guest and configuration calls refused. */
  readonly quiesced: boolean;
  /** Stops the controller (idempotent); the queue pages to resend, as EQ_SYNC returns them. */
  quiesce(): { pages: bigint[]; pageSize: number };
  /** The controller's state in the shared format; FAILED_PRECONDITION unless quiesced. */
  exportState(): ExportedState;
  /** Runs again, re-delivering what arrived while stopped (no-op when running); ends a pre-copy. */
  resume(): void;
  /** Absent: the backend cannot track its changes (the kernel's XIVE device). */
  readonly preCopy?: ControllerPreCopy;
  /**
   * Applies a stop-and-copy delta in place to this imported, quiesced controller (issue 14: the
   * finish costs what changed); false when the delta is not of a shape it applies in place
   * (the caller builds anew). A record that does not fit is STATE_INCONSISTENT, nothing applied.
   * Absent: always built anew.
   */
  applyStopDelta?(delta: ControllerDelta): boolean;
  /** Releases guest memory and anything else held. */
  close(): void;
}
