import type {
  CacheInvalidateInfo,
  DeviceBinding,
  GuestSte,
  InvalidationOutcome,
  MsiBinding,
  PasidTableConfig,
  RawCommand,
  SmmuDump,
  SmmuFeatures,
  Stage2Mapping,
  TranslationOutcome,
  TranslationResult,
} from "@vplane/smmuv3";
import type { EventLog } from "./event-log.js";

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
 * model, or (later) iommufd nesting on the host. Methods throw the model's typed errors (code,
 * reason, errno), which the service kit maps to gRPC statuses.
 */
export interface SmmuBackend {
  readonly kind: "EMULATED" | "NATIVE";
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
  /** A DMA; waits for page-request responses (or their timeout) and retries after SUCCESS. */
  dma(
    streamId: number,
    substreamId: number | undefined,
    iova: bigint,
    access: { read: number } | { write: Uint8Array },
    signal: AbortSignal,
  ): Promise<DmaOutcome>;
  respondPageRequest(cookie: number, code: number): void;
  devices(): DeviceBinding[];
  dump(): SmmuDump;
  /** Quiesced for migration (issue 6): events held, guest and configuration calls refused. */
  readonly quiesced: boolean;
  /** Stops the SMMU; idempotent. The guest-physical pages its DMA wrote since the last stop. */
  quiesce(): { pages: bigint[]; pageSize: number };
  /** Runs again, delivering what was held. No-op when running. */
  resume(): void;
  /** The versioned state (libs/smmuv3 device-state); FAILED_PRECONDITION unless quiesced. */
  exportState(): Uint8Array;
  close(): void;
}
