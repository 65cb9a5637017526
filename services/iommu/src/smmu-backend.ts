import type {
  CacheInvalidateInfo,
  DeviceBinding,
  GuestSte,
  InvalidationOutcome,
  MsiBinding,
  PasidTableConfig,
  RawCommand,
  SmmuDelta,
  SmmuDump,
  SmmuFeatures,
  Stage2Mapping,
  TranslationOutcome,
  TranslationResult,
} from "@vplane/smmuv3";
import type { BackendPreCopy } from "@vplane/service-kit";
import type { EventLog } from "./event-log.js";
import type { HandedOverSmmu } from "./native-vmm-handoff.js";
import type { SmmuRecord } from "./smmu-config-store.js";
import type { ExportedSmmuState, ImportedSmmuState } from "./smmu-state-format.js";

/** Which implementation backs an SMMU (its durable record names it). */
export type BackendKind = SmmuRecord["backend"];

/**
 * What opening a backend takes beside the SMMU's record (backend-factory.ts). A backend that
 * needs more to open (a VMM's handed-over iommufd and device fds) gets an optional field here:
 * the factory's callers do not change.
 */
export interface BackendOpening {
  /** Where relative guest RAM paths resolve. */
  dataDir: string;
  /** Open the SMMU this state describes (quiesced until resume), not a new one. */
  imported?: ImportedSmmuState;
  /**
   * With a VMM handoff socket (native-vmm-handoff.ts): the fds a VMM handed over for the SMMU
   * `vms/{vm}/smmus/{smmu}`, if any. Unset: the service opens the fds itself (standalone).
   */
  handedOver?: (name: string) => HandedOverSmmu | undefined;
}

/** One entry of an Invalidate batch. */
export type InvalidationItem = { raw: RawCommand } | { structured: CacheInvalidateInfo };

/** How a DMA through the SMMU ended. */
export interface DmaOutcome {
  outcome: TranslationOutcome | "completed";
  data?: Uint8Array;
  msiWrites: { address: number; data: Uint8Array }[];
  /** The translation that stopped it. */
  translation?: TranslationResult;
  /** The last page response the DMA waited for. */
  pageResponseCode?: number;
  pageRequestTimedOut: boolean;
}

/**
 * What the service does with one virtual SMMU, whichever backend implements it: the emulated
 * model, or iommufd nesting on the host. The service reaches an SMMU only through this
 * interface, and opens one only through openBackend (backend-factory.ts). Methods throw the
 * model's typed errors (code, reason, errno), which the service kit maps to gRPC statuses.
 */
export interface SmmuBackend {
  readonly kind: BackendKind;
  readonly vmid: number;
  readonly features: SmmuFeatures;
  /** Fault events and page requests, in stream order. */
  readonly log: EventLog;
  mapStage2(ipa: number, hostAddress: number, size: number, perm: number): void;
  unmapStage2(ipa: number, size: number): number;
  mappings(): readonly Stage2Mapping[];
  attachDevice(streamId: number, virtualStreamId: number, pageRequests: boolean): DeviceBinding;
  /** Returns how many outstanding page requests were answered INVALID. */
  detachDevice(streamId: number): number;
  attachPasidTable(config: PasidTableConfig): void;
  detachPasidTable(): void;
  setGuestSte(streamId: number, ste: readonly [bigint, bigint], flags: number): GuestSte;
  clearGuestSte(streamId: number): void;
  invalidate(items: readonly InvalidationItem[]): InvalidationOutcome;
  bindMsi(iova: number, gpa: number, size: number): MsiBinding;
  unbindMsi(iova: number): boolean;
  translate(
    streamId: number,
    substreamId: number | undefined,
    iova: bigint,
    write: boolean,
  ): TranslationResult;
  /**
   * A DMA; waits for page-request responses (or their timeout) and retries after SUCCESS.
   * `onTranslation` sees each page walk it makes (each retry walks again).
   */
  dma(
    streamId: number,
    substreamId: number | undefined,
    iova: bigint,
    access: { read: number } | { write: Uint8Array },
    signal: AbortSignal,
    onTranslation?: (result: TranslationResult) => void,
  ): Promise<DmaOutcome>;
  respondPageRequest(cookie: number, code: number): void;
  devices(): DeviceBinding[];
  dump(): SmmuDump;
  /** Quiesced for migration (issue 6): events held, guest and configuration calls refused. */
  readonly quiesced: boolean;
  /** Stops the SMMU; idempotent. The guest-physical pages its DMA wrote since the last stop. */
  quiesce(): { pages: bigint[]; pageSize: number };
  /** Runs again, delivering what was held (no-op when running); ends a pre-copy. */
  resume(): void;
  /** Pre-copy change tracking (issue 14), in the format's delta (libs/smmuv3 smmu-delta.ts); absent: NATIVE. */
  readonly preCopy?: BackendPreCopy<ExportedSmmuState>;
  /**
   * The versioned state in the format every backend shares (libs/smmuv3 device-state,
   * smmu-state-format.ts); FAILED_PRECONDITION unless quiesced.
   */
  exportState(): ExportedSmmuState;
  /**
   * Whether a stop-and-copy delta applies in place to this SMMU, imported and quiesced (issue
   * 14: the destination's finish costs what changed); false: rebuild it from the merged state.
   * A delta that does not fit is refused (the model's STATE_* error), nothing changed. Absent:
   * NATIVE (its kernel objects are made at the finish).
   */
  checkStopDelta?(delta: SmmuDelta): boolean;
  /** Applies it in place (checkStopDelta's answer and refusals). */
  applyStopDelta?(delta: SmmuDelta): boolean;
  close(): void;
}
