import type { GuestMemory } from "@vplane/guest-memory";
import {
  PageResponseCode,
  Smmu,
  SmmuError,
  encodeSmmuDelta,
  smmuDeltaSize,
  type DeviceBinding,
  type GuestSte,
  type InvalidationOutcome,
  type MsiBinding,
  type PageRequest,
  type PageRequestOutcome,
  type PasidTableConfig,
  type SmmuDelta,
  type SmmuDump,
  type SmmuLimits,
  type SmmuOptions,
  type SmmuState,
  type Stage2Mapping,
  type TranslationResult,
} from "@vplane/smmuv3";
import { refuseState, type BackendPreCopy } from "@vplane/service-kit";
import { EventLog } from "./event-log.js";
import { guestMemorySpec, openGuestMemory } from "./guest-memory-binding.js";
import type { BackendOpening, DmaOutcome, InvalidationItem, SmmuBackend } from "./smmu-backend.js";
import type { SmmuRecord } from "./smmu-config-store.js";
import { exportedSmmuState, type ExportedSmmuState } from "./smmu-state-format.js";
import { LIMITS } from "./service-limits.js";

/** An SMMU migrated here (ImportDeviceState): its checked state, the VMID and limits of this host. */
export interface ImportedSmmu {
  imported: SmmuState;
  vmid: number;
  limits: Partial<SmmuLimits>;
}

/**
 * Opens the record's guest RAM and the model over it: a new SMMU, or the migrated one (a state
 * the model refuses to rebuild is StateRefused on "payload.<field>").
 */
export function openEmulatedSmmuBackend(record: SmmuRecord, opening: BackendOpening): EmulatedSmmuBackend {
  const memory = openGuestMemory(
    guestMemorySpec(record.guestMemoryPath, BigInt(record.guestMemoryBytes), opening.dataDir),
  );
  const hostLimits = {
    devices: LIMITS.maxDevicesPerSmmu,
    stage2Mappings: LIMITS.maxMappingsPerSmmu,
    iotlbEntries: LIMITS.iotlbEntries,
  };
  try {
    if (opening.imported) {
      const imported = { imported: opening.imported.state, vmid: record.vmid, limits: hostLimits };
      try {
        return new EmulatedSmmuBackend(memory, imported);
      } catch (error) {
        if (!(error instanceof SmmuError)) throw error;
        throw refuseState(error.reason, error.message, error.field ? `payload.${error.field}` : "payload");
      }
    }
    return new EmulatedSmmuBackend(memory, {
      vmid: record.vmid,
      features: record.features,
      stage2GranuleBits: record.stage2GranuleBits,
      limits: {
        ...hostLimits,
        eventQueueDepth: record.eventQueueDepth,
        pageRequestTimeoutMs: record.pageRequestTimeoutMs,
      },
    });
  } catch (error) {
    memory.close();
    throw error;
  }
}

/**
 * The emulated backend: vplane's SMMUv3 model over the VM's guest RAM. After each operation it
 * moves what the model delivers (events, lost markers, page requests, in order) into the stream
 * log, and gives page requests what the model leaves to its caller: a timer for each deadline
 * and a waiting DMA for each response. Quiesced (issue 6), the model holds its deliveries and
 * the timers stop; resume re-arms them with the time each request had left.
 */
export class EmulatedSmmuBackend implements SmmuBackend {
  readonly kind = "EMULATED" as const;
  log: EventLog;
  private readonly smmu: Smmu;
  private readonly waiting = new Map<number, (outcome: PageRequestOutcome) => void>();
  private readonly timers = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly memory: GuestMemory,
    options: Omit<SmmuOptions, "memory"> | ImportedSmmu,
    private readonly clock: () => number = Date.now,
  ) {
    this.smmu =
      "imported" in options
        ? Smmu.importState(
            memory,
            { vmid: options.vmid, limits: options.limits, now: clock() },
            options.imported,
          )
        : new Smmu({ memory, ...options });
    this.log = new EventLog(LIMITS.eventBuffer, BigInt(this.smmu.deliveredCount));
  }

  get vmid(): number {
    return this.smmu.vmid;
  }

  get features() {
    return this.smmu.features;
  }

  mapStage2(ipa: number, hostAddress: number, size: number, perm: number): void {
    this.smmu.mapStage2(ipa, hostAddress, size, perm);
  }

  unmapStage2(ipa: number, size: number): number {
    return this.smmu.unmapStage2(ipa, size);
  }

  mappings(): readonly Stage2Mapping[] {
    return this.smmu.stage2Mappings;
  }

  attachDevice(streamId: number, virtualStreamId: number, pageRequests: boolean): DeviceBinding {
    return this.smmu.attachDevice(streamId, virtualStreamId, { pageRequests });
  }

  detachDevice(streamId: number): number {
    const answered = this.smmu.detachDevice(streamId);
    for (const outcome of answered) this.settle(outcome);
    return answered.length;
  }

  attachPasidTable(config: PasidTableConfig): void {
    this.smmu.attachPasidTable(config);
  }

  detachPasidTable(): void {
    this.smmu.detachPasidTable();
  }

  setGuestSte(streamId: number, ste: readonly [bigint, bigint], flags: number): GuestSte {
    return this.smmu.setGuestSte(streamId, ste, flags);
  }

  clearGuestSte(streamId: number): void {
    this.smmu.clearGuestSte(streamId);
  }

  /** Applies entries in order; the first refused stops the batch with its index. */
  invalidate(items: readonly InvalidationItem[]): InvalidationOutcome {
    this.smmu.assertRunning("Invalidate");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      try {
        if ("raw" in item) {
          const r = this.smmu.invalidateCommands([item.raw]);
          if (r.error) throw r.error;
        } else this.smmu.invalidate(item.structured);
      } catch (error) {
        if (error instanceof SmmuError) return { handled: i, error: error.atBatchIndex(i) };
        throw error;
      }
    }
    return { handled: items.length };
  }

  bindMsi(iova: number, gpa: number, size: number): MsiBinding {
    return this.smmu.bindMsi(iova, gpa, size);
  }

  unbindMsi(iova: number): boolean {
    return this.smmu.unbindMsi(iova) !== undefined;
  }

  translate(
    streamId: number,
    substreamId: number | undefined,
    iova: bigint,
    write: boolean,
  ): TranslationResult {
    const result = this.smmu.translate(streamId, substreamId, iova, write, { now: this.clock() });
    this.drain();
    return result;
  }

  async dma(
    streamId: number,
    substreamId: number | undefined,
    iova: bigint,
    access: { read: number } | { write: Uint8Array },
    signal: AbortSignal,
    onTranslation?: (result: TranslationResult) => void,
  ): Promise<DmaOutcome> {
    let pageResponseCode: number | undefined;
    let pageRequestTimedOut = false;
    for (let round = 0; ; round++) {
      const options = { now: this.clock(), onTranslation };
      const r =
        "write" in access
          ? this.smmu.dmaWrite(streamId, substreamId, iova, access.write, options)
          : this.smmu.dmaRead(streamId, substreamId, iova, access.read, options);
      this.drain();
      const request = r.translation?.pageRequest;
      if (r.outcome !== "page-request" || request === undefined) {
        return {
          ...r,
          outcome: r.outcome === "completed" ? "completed" : r.translation!.outcome,
          pageResponseCode,
          pageRequestTimedOut,
        };
      }
      const answer = await this.answerTo(request.cookie, signal);
      pageResponseCode = answer?.code;
      pageRequestTimedOut = answer?.timedOut ?? false;
      if (answer?.code !== PageResponseCode.SUCCESS || round >= LIMITS.maxPageRequestRounds) {
        return {
          outcome: "page-request",
          msiWrites: [],
          translation: r.translation,
          pageResponseCode,
          pageRequestTimedOut,
        };
      }
    }
  }

  respondPageRequest(cookie: number, code: number): void {
    this.settle(this.smmu.respondPageRequest(cookie, code));
  }

  devices(): DeviceBinding[] {
    return this.smmu.listDevices();
  }

  dump(): SmmuDump {
    return this.smmu.dump();
  }

  get quiesced(): boolean {
    return this.smmu.quiesced;
  }

  /** Stops the SMMU (see Smmu.quiesce) and its page-request timers; the pages its DMA wrote. */
  quiesce(): { pages: bigint[]; pageSize: number } {
    const { dirtyPages } = this.smmu.quiesce(this.clock());
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    const pageSize = this.memory.pageSize;
    return { pages: dirtyPages.map((page) => BigInt(page) * BigInt(pageSize)), pageSize };
  }

  /** Runs again: deadlines re-armed with the time left, what was held goes to the stream. */
  resume(): void {
    this.smmu.endTracking();
    if (!this.smmu.quiesced) return;
    this.smmu.resume(this.clock());
    for (const request of this.smmu.listPageRequests()) this.arm(request);
    this.drain();
  }

  exportState(): ExportedSmmuState {
    return exportedSmmuState(this.smmu.exportState());
  }

  checkStopDelta(delta: SmmuDelta): boolean {
    return this.smmu.checkStopDelta(delta);
  }

  /**
   * The model's in-place apply (Smmu.applyStopDelta). The stream log starts again at the
   * source's delivered count, as an imported SMMU's does: no one has read this prepared SMMU's.
   */
  applyStopDelta(delta: SmmuDelta): boolean {
    const delivered = this.smmu.deliveredCount;
    if (!this.smmu.applyStopDelta(delta)) return false;
    if (this.smmu.deliveredCount !== delivered) {
      const log = new EventLog(LIMITS.eventBuffer, BigInt(this.smmu.deliveredCount));
      log.onAppend = this.log.onAppend;
      this.log.close();
      this.log = log;
    }
    return true;
  }

  /** Pre-copy (issue 14): the model diffs its state against what the last read handed out. */
  readonly preCopy: BackendPreCopy<ExportedSmmuState> = {
    read: (restart) => {
      const delta = this.smmu.readChanges(restart, this.clock());
      return delta && exportedSmmuState(encodeSmmuDelta(delta));
    },
    pendingBytes: () => {
      const changes = this.smmu.pendingChanges(this.clock());
      const bytes = changes ? smmuDeltaSize(changes) : 0;
      return this.smmu.tracking ? { initial: 0, dirty: bytes } : { initial: bytes, dirty: 0 };
    },
    tracking: () => this.smmu.tracking,
    end: () => this.smmu.endTracking(),
  };

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const outcome of this.smmu.failPageRequests()) this.settle(outcome);
    this.log.close();
    this.memory.close();
  }

  /** Moves what the model delivers into the stream log; a page request's deadline is armed as it goes out. */
  private drain(): void {
    for (const d of this.smmu.takeDeliveries()) {
      if (d.kind === "event") this.log.appendEvent(d.queued);
      else {
        this.log.appendPageRequest(d.request);
        this.arm(d.request);
      }
    }
  }

  /**
   * A timer for the request's deadline. Timers may fire a little before the wall clock reaches
   * the deadline, so a request that is still pending then gets its timer armed again (with its
   * deadline as it stands: a stop postpones it).
   */
  private arm(request: PageRequest): void {
    clearTimeout(this.timers.get(request.cookie));
    const timer = setTimeout(
      () => {
        this.timers.delete(request.cookie);
        if (this.smmu.quiesced) return;
        this.expire();
        const pending = this.smmu.pageRequests.get(request.cookie);
        if (pending) this.arm(pending);
      },
      Math.max(1, request.deadline - this.clock()),
    );
    timer.unref();
    this.timers.set(request.cookie, timer);
  }

  private expire(): void {
    for (const outcome of this.smmu.expirePageRequests(this.clock())) this.settle(outcome);
  }

  private settle(outcome: PageRequestOutcome): void {
    const cookie = outcome.request.cookie;
    const timer = this.timers.get(cookie);
    if (timer) clearTimeout(timer);
    this.timers.delete(cookie);
    this.waiting.get(cookie)?.(outcome);
    this.waiting.delete(cookie);
  }

  /** The response (or expiry) of a page request; undefined if the caller went away first. */
  private answerTo(cookie: number, signal: AbortSignal): Promise<PageRequestOutcome | undefined> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(undefined);
      const onAbort = () => {
        this.waiting.delete(cookie);
        resolve(undefined);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.set(cookie, (outcome) => {
        signal.removeEventListener("abort", onAbort);
        resolve(outcome);
      });
    });
  }
}
