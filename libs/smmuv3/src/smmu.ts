import type { GuestMemory } from "@vplane/guest-memory";
import { sameRecord } from "@vplane/model-kit";
import { POW2 } from "./bits.js";
import { Perm } from "./access-permission.js";
import { decodeContextDescriptor, type ContextDescriptor } from "./context-descriptor.js";
import { DmaTransfer, type DmaResult } from "./dma-transfer.js";
import { EventClass, EventId } from "./event-record.js";
import { faultEvent, faultRecorded, faultRecoverable, forwardedToGuest } from "./fault-event.js";
import { EventQueue, type QueuedEvent } from "./event-queue.js";
import { granuleSupported, resolveFeatures, type SmmuFeatures } from "./features.js";
import { CommandHandling, type InvalidationOutcome } from "./command-handling.js";
import type { RawCommand } from "./invalidation-command.js";
import { Iotlb, TlbEntry } from "./iotlb.js";
import { IPA_DOORBELL, IPA_FAULT, NestedWalker } from "./nested-walker.js";
import { PageRequestQueue, type PageRequest, type PageRequestOutcome } from "./page-request-queue.js";
import { applyPasidTableConfig, type PasidTableConfig } from "./pasid-table-config.js";
import type { CacheInvalidateInfo } from "./seed-cache-invalidate.js";
import { unrecoverableFaultFromEvent } from "./seed-fault-report.js";
import { publicBinding, type DeviceBinding, type DeviceRecord } from "./smmu-device.js";
import { dumpSmmu, type SmmuDump } from "./smmu-dump.js";
import {
  Errno,
  SmmuError,
  alreadyExists,
  checkInteger,
  invalidArgument,
  notFound,
  resourceExhausted,
} from "./smmu-error.js";
import { Stage2Domain, type MsiBinding, type Stage2Mapping } from "./stage2-domain.js";
import { S1Dss, S1Fmt, validateGuestSte, type GuestStage1, type GuestSte } from "./stream-table-entry.js";
import { StreamKind, decodeStreamConfig, type CachedCd, type StreamConfig } from "./stream-config.js";
import { TranslationResult } from "./translation-result.js";
import {
  captureSmmuRuntime,
  captureSmmuState,
  deviceStateOf,
  type SmmuStateParts,
} from "./device-state/capture-smmu-state.js";
import { SmmuChangeTracker, type TrackedSmmu } from "./device-state/smmu-changes.js";
import { decodeSmmuState } from "./device-state/decode-smmu-state.js";
import { encodeSmmuState } from "./device-state/encode-smmu-state.js";
import { checkSmmuStopDelta } from "./device-state/check-smmu-stop-delta.js";
import { restoreSmmuRuntime, restoreSmmuState } from "./device-state/restore-smmu-state.js";
import type { SmmuDelta } from "./device-state/smmu-delta.js";
import type { SmmuState } from "./device-state/smmu-state.js";
import { StreamDelivery, type Delivery } from "./stream-delivery.js";
import { isGranuleBits, type GranuleBits } from "./translation-granule.js";

/** Bounds of one SMMU; every one is enforced. */
export interface SmmuLimits {
  /** IOTLB entries before a full flush (QEMU's SMMU_IOTLB_MAX_SIZE = 256). */
  iotlbEntries: number;
  /** Cached context descriptors across all streams before the config cache is flushed. */
  configCacheEntries: number;
  /** Event queue depth (iommufd veventq_depth). */
  eventQueueDepth: number;
  /** Outstanding page requests. */
  pageRequests: number;
  /** How long a page request waits for its response, in the caller's clock units (ms). */
  pageRequestTimeoutMs: number;
  /** Stage-2 mappings (VFIO dma_entry_limit). */
  stage2Mappings: number;
  /** Devices (vdevices). */
  devices: number;
}

export const DEFAULT_LIMITS: Readonly<SmmuLimits> = Object.freeze({
  iotlbEntries: 256,
  configCacheEntries: 1024,
  eventQueueDepth: 1024,
  pageRequests: 256,
  pageRequestTimeoutMs: 10_000,
  stage2Mappings: 65_535,
  devices: 4096,
});

export interface SmmuOptions {
  memory: GuestMemory;
  /** VMID of the host stage-2 domain, 1..65535 (0 is kept for the host's own use). */
  vmid: number;
  features?: Partial<SmmuFeatures>;
  /** Stage-2 granule the host uses (an advertised one). Default 4 KiB. */
  stage2GranuleBits?: GranuleBits;
  limits?: Partial<SmmuLimits>;
}

/** What raise() needs to know about the transaction in flight. */
class Transaction {
  dev: DeviceRecord | undefined = undefined;
  sid = 0;
  ssid = -1;
  iova = 0;
  big: bigint | undefined = undefined;
  write = false;
  now = 0;
  cd: ContextDescriptor | undefined = undefined;
  st: StreamConfig | undefined = undefined;
}

export interface TranslateOptions {
  /** Caller's clock (ms) for page-request deadlines. */
  now?: number;
}

export interface DmaOptions extends TranslateOptions {
  /** Sees each translation the transfer makes, as it is made (the service counts IOTLB hits). */
  onTranslation?: (result: TranslationResult) => void;
}

/**
 * One virtual SMMUv3 of a VM with its host-owned stage-2 domain: devices, the guest's stage-1
 * configuration in either form (seed PASID table or iommufd guest STE), translation through
 * both stages with the IOTLB and config cache, invalidation in both forms, MSI doorbell binding,
 * the event queue and page requests. Pure and synchronous; no timers (callers pass their clock).
 */
export class Smmu {
  readonly features: SmmuFeatures;
  readonly limits: SmmuLimits;
  readonly domain: Stage2Domain;
  readonly iotlb: Iotlb;
  readonly events: EventQueue;
  readonly pageRequests: PageRequestQueue;
  private readonly delivery: StreamDelivery;
  /** Set while quiesced for migration (issue 6): when it stopped, and the pages its DMA had written. */
  private stopped: { at: number; dirtyPages: number[] } | undefined;
  /** Pre-copy: what the last read handed out, and the mappings and devices changed since. */
  private readonly preCopy = new SmmuChangeTracker();
  private readonly memory: GuestMemory;
  private readonly walker: NestedWalker;
  private readonly devices = new Map<number, DeviceRecord>();
  private readonly byVirtualSid = new Map<number, DeviceRecord>();
  /** Seed form: the domain-wide stage-1 config from ATTACH_PASID_TABLE. */
  private seedStage1: GuestStage1 | undefined;
  private cachedCds = 0;
  /** The transaction being translated, for raise() (the model is synchronous: one at a time). */
  private readonly txn = new Transaction();
  private readonly commands: CommandHandling;

  constructor(options: SmmuOptions) {
    this.features = resolveFeatures(options.features);
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(this.limits) as [string, number][])
      checkInteger(value, 1, 2 ** 31, `limits.${name}`);
    checkInteger(options.vmid, 1, this.features.vmid16 ? 0xffff : 0xff, "vmid");
    const granuleBits = options.stage2GranuleBits ?? 12;
    if (!isGranuleBits(granuleBits) || !granuleSupported(this.features, granuleBits)) {
      throw invalidArgument(
        "UNSUPPORTED_GRANULE",
        `stage-2 granule 2^${granuleBits} is not advertised`,
        "stage2GranuleBits",
      );
    }
    this.memory = options.memory;
    this.domain = new Stage2Domain({
      vmid: options.vmid,
      granuleBits,
      ipaBits: this.features.outputAddressBits,
      backingSize: options.memory.size,
      maxMappings: this.limits.stage2Mappings,
    });
    this.iotlb = new Iotlb(this.limits.iotlbEntries);
    this.events = new EventQueue(this.limits.eventQueueDepth);
    this.pageRequests = new PageRequestQueue(this.limits.pageRequests, this.limits.pageRequestTimeoutMs);
    this.delivery = new StreamDelivery(this.events, this.pageRequests);
    this.walker = new NestedWalker(options.memory, this.domain, this.iotlb, this.features.outputAddressBits);
    this.commands = new CommandHandling(this.iotlb, this.vmid, this.features, {
      devices: () => this.devices.values(),
      deviceByVirtualSid: (vsid) => this.byVirtualSid.get(vsid),
      forgetStream: (d) => this.forgetStream(d),
      forgetContextDescriptor: (d, ssid) => this.forgetContextDescriptor(d, ssid),
    });
  }

  get vmid(): number {
    return this.domain.vmid;
  }

  // ---- stage 2 (host) ----------------------------------------------------------------------

  /** Maps guest-physical [ipa, ipa + size) onto the backing at hostAddress (VFIO MAP_DMA rules). */
  mapStage2(ipa: number, hostAddress: number, size: number, perm: number): void {
    this.assertRunning("MapStage2");
    this.domain.map(ipa, hostAddress, size, perm);
    this.preCopy.mappingWritten(ipa);
  }

  /**
   * Unmaps (VFIO UNMAP_DMA rules) and invalidates what the mappings fed: the stage-2 entries of
   * the range and, as Linux does for a nesting parent, every stage-1 entry of the VMID.
   */
  unmapStage2(ipa: number, size: number): number {
    this.assertRunning("UnmapStage2");
    const { bytes, removed } = this.domain.unmap(ipa, size);
    for (const m of removed) this.preCopy.mappingWritten(m.ipa);
    if (bytes > 0) {
      this.iotlb.invalidateRange(-1, this.vmid, 0, ipa, size);
      this.iotlb.invalidateVmidStage1(this.vmid);
    }
    return bytes;
  }

  get stage2Mappings(): readonly Stage2Mapping[] {
    return this.domain.mappings;
  }

  // ---- devices -----------------------------------------------------------------------------

  /**
   * Binds physical StreamID `streamId` to the guest's `virtualStreamId` (iommufd VDEVICE_ALLOC,
   * digest §2.3): a vSID beyond the advertised SIDSIZE → EINVAL; a device already bound → EEXIST;
   * a vSID already taken → EEXIST; the device limit → ENOSPC.
   */
  attachDevice(
    streamId: number,
    virtualStreamId: number,
    options: { pageRequests?: boolean } = {},
  ): DeviceBinding {
    this.assertRunning("AttachDevice");
    checkInteger(streamId, 0, 0xffff_ffff, "streamId");
    if (
      !Number.isSafeInteger(virtualStreamId) ||
      virtualStreamId < 0 ||
      virtualStreamId >= POW2[this.features.streamIdBits]!
    ) {
      throw invalidArgument(
        "VIRTUAL_SID_OUT_OF_RANGE",
        `virtual StreamID must be below 2^${this.features.streamIdBits}`,
        "virtualStreamId",
      );
    }
    if (this.devices.has(streamId))
      throw alreadyExists("DEVICE_ALREADY_BOUND", `StreamID ${streamId} already has a vdevice`, "streamId");
    if (this.byVirtualSid.has(virtualStreamId)) {
      throw alreadyExists(
        "VIRTUAL_SID_TAKEN",
        `virtual StreamID ${virtualStreamId} is already taken`,
        "virtualStreamId",
      );
    }
    if (this.devices.size >= this.limits.devices)
      throw resourceExhausted("TOO_MANY_DEVICES", `at most ${this.limits.devices} devices`);
    const record: DeviceRecord = {
      streamId,
      virtualStreamId,
      pageRequests: options.pageRequests ?? false,
      guestSte: undefined,
      state: undefined,
    };
    this.devices.set(streamId, record);
    this.byVirtualSid.set(virtualStreamId, record);
    this.preCopy.deviceWritten(streamId);
    return publicBinding(record);
  }

  /** Unbinds a device: ENOENT if none. Its outstanding page requests are answered INVALID. */
  detachDevice(streamId: number): PageRequestOutcome[] {
    this.assertRunning("DetachDevice");
    const record = this.device(streamId);
    this.forgetStream(record);
    this.devices.delete(streamId);
    this.byVirtualSid.delete(record.virtualStreamId);
    this.preCopy.deviceWritten(streamId);
    return this.pageRequests.dropDevice(streamId);
  }

  listDevices(): DeviceBinding[] {
    return [...this.devices.values()].map(publicBinding);
  }

  /** The device bound to a virtual StreamID, if any. */
  deviceByVirtualSid(virtualStreamId: number): DeviceBinding | undefined {
    const r = this.byVirtualSid.get(virtualStreamId);
    return r && publicBinding(r);
  }

  // ---- guest stage-1 configuration ---------------------------------------------------------

  /**
   * Seed ATTACH_PASID_TABLE (digest §1.2): the domain-wide stage-1 config, rewritten into every
   * device's STE. Refused with EBUSY while a device carries an iommufd guest STE (one owner of
   * stage 1 per domain).
   */
  attachPasidTable(config: PasidTableConfig): void {
    this.assertRunning("AttachPasidTable");
    for (const d of this.devices.values()) {
      if (d.guestSte) {
        throw new SmmuError({
          code: "FAILED_PRECONDITION",
          reason: "STAGE1_OWNED_BY_IOMMUFD",
          message: `device ${d.streamId} has an iommufd guest STE; detach it first`,
          errno: Errno.EBUSY,
        });
      }
    }
    this.seedStage1 = applyPasidTableConfig(this.seedStage1, config);
    for (const d of this.devices.values()) this.forgetStream(d);
  }

  /** Seed DETACH_PASID_TABLE: full nested teardown, back to stage 2 only. */
  detachPasidTable(): void {
    this.assertRunning("DetachPasidTable");
    this.seedStage1 = undefined;
    for (const d of this.devices.values()) this.forgetStream(d);
  }

  get pasidTable(): GuestStage1 | undefined {
    return this.seedStage1;
  }

  /**
   * iommufd form: HWPT_ALLOC(ARM_SMMUV3 {ste[2]}) on the vIOMMU, then attach (digest §2.1): the
   * vdevice must exist (ENOENT); flags other than FAULT_ID_VALID (4) → EOPNOTSUPP; the STE
   * words are validated with the EIO rules; refused with EBUSY while a seed PASID table is
   * attached. FAULT_ID_VALID links the HWPT to the fault queue: the device's stage-1 faults
   * become page requests.
   */
  setGuestSte(streamId: number, ste: readonly [bigint, bigint], flags = 0): GuestSte {
    this.assertRunning("AttachPasidTable");
    const record = this.device(streamId);
    if (flags !== 0 && flags !== HWPT_FAULT_ID_VALID) {
      throw invalidArgument(
        "UNSUPPORTED_FLAGS",
        `HWPT flags 0x${flags.toString(16)} are not supported`,
        "flags",
        Errno.EOPNOTSUPP,
      );
    }
    if (this.seedStage1) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "STAGE1_OWNED_BY_PASID_TABLE",
        message: "a seed PASID table is attached; detach it first",
        errno: Errno.EBUSY,
      });
    }
    const validated = validateGuestSte(ste[0], ste[1]);
    record.guestSte = validated;
    if (flags === HWPT_FAULT_ID_VALID) record.pageRequests = true;
    this.preCopy.deviceWritten(streamId);
    this.forgetStream(record);
    return validated;
  }

  /** Detaches the nested HWPT: the device goes back to the stage-2 parent (stage 1 bypassed). */
  clearGuestSte(streamId: number): void {
    this.assertRunning("DetachPasidTable");
    const record = this.device(streamId);
    record.guestSte = undefined;
    this.preCopy.deviceWritten(streamId);
    this.forgetStream(record);
  }

  // ---- translation ---------------------------------------------------------------------------

  /** Translates one access; `substreamId` undefined for a transaction without one. */
  translate(
    streamId: number,
    substreamId: number | undefined,
    iova: number | bigint,
    write: boolean,
    options: TranslateOptions = {},
  ): TranslationResult {
    const out = new TranslationResult();
    const ssid = substreamId ?? -1;
    if (typeof iova === "bigint") {
      const v = BigInt.asUintN(64, iova);
      if (v <= BigInt(Number.MAX_SAFE_INTEGER))
        return this.run(out, streamId, ssid, Number(v), undefined, write, options.now ?? 0);
      return this.run(out, streamId, ssid, 0, v, write, options.now ?? 0);
    }
    return this.run(out, streamId, ssid, iova, undefined, write, options.now ?? 0);
  }

  /**
   * The hot path: translates into `out` (reused) an IOVA below 2^53, ssid -1 for none. An IOTLB
   * hit allocates nothing.
   */
  translateInto(
    out: TranslationResult,
    streamId: number,
    ssid: number,
    iova: number,
    write: boolean,
    now = 0,
  ): TranslationResult {
    return this.run(out, streamId, ssid, iova, undefined, write, now);
  }

  /**
   * A fresh walk that neither reads nor fills any cache and records nothing: what the caches
   * must agree with (the property the tests check).
   */
  translateUncached(
    streamId: number,
    substreamId: number | undefined,
    iova: number | bigint,
    write: boolean,
  ): TranslationResult {
    this.walker.useCaches = false;
    const queueBefore = this.recordingSuppressed;
    this.recordingSuppressed = true;
    try {
      return this.translate(streamId, substreamId, iova, write);
    } finally {
      this.walker.useCaches = true;
      this.recordingSuppressed = queueBefore;
    }
  }

  private recordingSuppressed = false;

  private run(
    out: TranslationResult,
    sid: number,
    ssid: number,
    iova: number,
    big: bigint | undefined,
    write: boolean,
    now: number,
  ): TranslationResult {
    out.reset();
    const t = this.txn;
    t.sid = sid;
    t.ssid = ssid;
    t.iova = iova;
    t.big = big;
    t.write = write;
    t.now = now;
    t.cd = undefined;
    t.st = undefined;
    const dev = this.devices.get(sid);
    t.dev = dev;
    if (dev === undefined) return this.configFault(out, EventId.C_BAD_STREAMID);
    const useCaches = this.walker.useCaches;
    let st = useCaches ? dev.state : undefined;
    if (st === undefined) st = this.loadStream(dev, useCaches);
    t.st = st;
    const kind = st.kind;
    if (kind === StreamKind.STAGE2_ONLY) return this.stage2Only(out, ssid, iova, write);
    if (kind === StreamKind.ABORT) {
      out.outcome = "aborted";
      return out;
    }
    if (kind === StreamKind.BAD_STE) return this.configFault(out, EventId.C_BAD_STE);

    // Which CD (digest §3.1 S1CDMax / S1DSS; SMMUv3 substream rules).
    let cdIndex = 0;
    if (ssid < 0) {
      if (st.s1cdmax !== 0) {
        if (st.s1dss === S1Dss.TERMINATE) return this.configFault(out, EventId.F_STREAM_DISABLED);
        if (st.s1dss === S1Dss.BYPASS) return this.stage2Only(out, ssid, iova, write);
      }
    } else {
      if (st.s1cdmax === 0 || ssid >= POW2[st.s1cdmax]! || (ssid === 0 && st.s1dss === S1Dss.SSID0)) {
        return this.configFault(out, EventId.C_BAD_SUBSTREAMID);
      }
      cdIndex = ssid;
    }
    let c = useCaches ? (cdIndex === 0 ? st.cd0 : st.cds.get(cdIndex)) : undefined;
    if (c === undefined || c.epoch !== this.iotlb.epoch) {
      c = this.loadContextDescriptor(out, dev, st, cdIndex, useCaches);
      if (c === undefined) return out;
    }
    const cd = c.cd;
    t.cd = cd;

    // Region (TTB0 / TTB1) and the address within it (digest §4.2 "Stage 1" step 1).
    let region = 0;
    let va = iova;
    if (big !== undefined) {
      const top = Number(big >> 52n);
      region = (top >> 3) & 1;
      va = Number(big & 0xf_ffff_ffff_ffffn);
      const expectTop = region === 0 ? 0 : 0xfff;
      const topMask = cd.tbi[region] ? 0x00f : 0xfff;
      if ((top & topMask) !== (expectTop & topMask)) return this.stage1Fault(out, EventId.F_TRANSLATION);
    }
    const tt = cd.tables[region];
    if (tt === undefined) return this.stage1Fault(out, EventId.F_TRANSLATION);
    if (region === 0 ? va >= POW2[tt.inputBits]! : va < POW2[52]! - POW2[tt.inputBits]!) {
      return this.stage1Fault(out, EventId.F_TRANSLATION);
    }

    const need = write ? Perm.WRITE : Perm.READ;
    const walker = this.walker;
    if (useCaches) {
      let e = this.iotlb.lookup(c.ctx, region, tt.tg, tt.startLevel, va);
      if (e === undefined && walker.s2Tg !== tt.tg)
        e = this.iotlb.lookup(c.ctx, region, walker.s2Tg, walker.s2StartLevel, va);
      if (e !== undefined) {
        this.iotlb.hits++;
        const offset = va % POW2[e.sizeBits]!;
        if ((e.perm & need) === 0) return this.stage1Fault(out, EventId.F_PERMISSION);
        if ((e.parentPerm & need) === 0) {
          walker.fault.set(EventId.F_PERMISSION, true, EventClass.IN, e.ipaBase + offset);
          return this.raise(out);
        }
        out.address = e.outBase + offset;
        out.sizeBits = e.sizeBits;
        out.perm = e.perm & e.parentPerm;
        out.hit = true;
        return out;
      }
      this.iotlb.misses++;
    }

    // Miss: stage 1 through stage 2, then stage 2 of the output (digest §4.2 "Nested").
    if (!walker.walkStage1(cd, tt, va, write)) return this.raise(out);
    const s1Base = walker.s1OutBase;
    const s1Bits = walker.s1SizeBits;
    const s1Level = walker.s1Level;
    const s1Perm = walker.s1Perm;
    const ipa = s1Base + (va % POW2[s1Bits]!);
    const pa = walker.translateIpa(ipa, need, EventClass.IN);
    if (pa === IPA_FAULT) return this.raise(out);
    if (pa === IPA_DOORBELL) {
      out.outcome = "doorbell";
      out.address = ipa;
      out.perm = s1Perm;
      out.sizeBits = 12;
      return out;
    }
    const s2 = walker.lastStage2!;
    // Keep the smaller of the two mappings, with its level and granule.
    const s1Smaller = s1Bits <= s2.sizeBits;
    const bits = s1Smaller ? s1Bits : s2.sizeBits;
    const offset = va % POW2[bits]!;
    if (useCaches && !this.domain.overlapsDoorbell(ipa - offset, bits)) {
      const entry = new TlbEntry(
        pa - offset,
        ipa - offset,
        bits,
        s1Perm,
        s2.perm,
        s1Smaller ? s1Level : s2.level,
        s1Smaller ? tt.granuleBits : s2.granuleBits,
      );
      this.iotlb.insert(
        c.ctx,
        region,
        s1Smaller ? tt.tg : walker.s2Tg,
        s1Smaller ? s1Level : s2.level,
        va,
        entry,
      );
    }
    out.address = pa;
    out.sizeBits = bits;
    out.perm = s1Perm & s2.perm;
    return out;
  }

  /** Stage 1 bypassed: the input address is the IPA (digest §4.2: IOVA >= 2^OAS is a stage-1 F_ADDR_SIZE). */
  private stage2Only(out: TranslationResult, ssid: number, iova: number, write: boolean): TranslationResult {
    const big = this.txn.big;
    if (ssid >= 0) return this.configFault(out, EventId.C_BAD_SUBSTREAMID);
    if (big !== undefined || iova >= POW2[this.features.outputAddressBits]!) {
      this.walker.fault.set(EventId.F_ADDR_SIZE, false, EventClass.IN);
      return this.raise(out);
    }
    const pa = this.walker.translateIpa(iova, write ? Perm.WRITE : Perm.READ, EventClass.IN);
    if (pa === IPA_FAULT) return this.raise(out);
    if (pa === IPA_DOORBELL) {
      out.outcome = "doorbell";
      out.address = iova;
      out.sizeBits = 12;
      out.perm = Perm.READ_WRITE;
      return out;
    }
    const e = this.walker.lastStage2!;
    out.address = pa;
    out.sizeBits = e.sizeBits;
    out.perm = e.perm;
    out.hit = this.walker.lastStage2Hit;
    return out;
  }

  private loadStream(dev: DeviceRecord, cache: boolean): StreamConfig {
    const st = decodeStreamConfig(
      dev.guestSte?.stage1 ?? this.seedStage1 ?? { kind: "bypass" },
      this.features,
    );
    if (cache) dev.state = st;
    return st;
  }

  /** Finds, fetches (through stage 2) and decodes CD `index`; on failure raises the event and returns undefined. */
  private loadContextDescriptor(
    out: TranslationResult,
    dev: DeviceRecord,
    st: StreamConfig,
    index: number,
    cache: boolean,
  ): CachedCd | undefined {
    const walker = this.walker;
    let cdIpa: number;
    if (st.s1cdmax === 0 || st.s1fmt === S1Fmt.LINEAR) {
      cdIpa = st.contextPtr + index * 64;
    } else {
      const split = st.s1fmt === S1Fmt.TWO_LEVEL_4K ? 6 : 10;
      const l1 = walker.fetchStructure(st.contextPtr + Math.floor(index / POW2[split]!) * 8, 1);
      if (l1 === undefined) {
        this.raise(out);
        return undefined;
      }
      const desc = l1[0]!;
      if ((desc & 1n) === 0n) {
        this.configFault(out, EventId.C_BAD_SUBSTREAMID);
        return undefined;
      }
      cdIpa = Number(desc & 0xf_ffff_ffff_f000n) + (index % POW2[split]!) * 64;
    }
    const words = walker.fetchStructure(cdIpa, 4);
    if (words === undefined) {
      this.raise(out);
      return undefined;
    }
    const decoded = decodeContextDescriptor(words as [bigint, bigint, bigint, bigint], this.features);
    if (!decoded.ok) {
      this.configFault(out, EventId.C_BAD_CD);
      return undefined;
    }
    const c: CachedCd = {
      cd: decoded.cd,
      ctx: this.iotlb.context(decoded.cd.asid, this.vmid),
      epoch: this.iotlb.epoch,
    };
    if (cache) {
      const had = index === 0 ? st.cd0 !== undefined : st.cds.has(index);
      if (!had && this.cachedCds >= this.limits.configCacheEntries) {
        // Bounded: a full config cache is flushed (every stream re-decodes), then this stream kept.
        this.flushConfigCache();
        st.cd0 = undefined;
        st.cds.clear();
        dev.state = st;
      }
      if (index === 0) st.cd0 = c;
      else st.cds.set(index, c);
      if (!had) this.cachedCds++;
    }
    return c;
  }

  private configFault(out: TranslationResult, id: number): TranslationResult {
    this.walker.fault.set(id, false, EventClass.CD);
    return this.raise(out);
  }

  private stage1Fault(out: TranslationResult, id: number): TranslationResult {
    this.walker.fault.set(id, false, EventClass.IN);
    return this.raise(out);
  }

  /**
   * Turns the walker's fault into the outcome: an event record with the fields QEMU gives that
   * event (digest §3.4), recorded when the config says so (config errors always; stage-1 faults
   * when CD.R; stage-2 faults always, the host's STE having S2R), or, for a recoverable stage-1
   * fault of a device that can take page requests, a page request instead.
   */
  private raise(out: TranslationResult): TranslationResult {
    const f = this.walker.fault;
    const { dev, sid, ssid, iova, big, write, cd, st, now } = this.txn;
    const substreamId = ssid >= 0 ? ssid : undefined;
    const inputAddress = big ?? BigInt(iova);
    const event = faultEvent(f, {
      streamId: dev ? dev.virtualStreamId : sid,
      substreamId,
      write,
      inputAddress,
    });
    out.event = event;
    const recoverable =
      dev !== undefined &&
      faultRecoverable(f) &&
      ((dev.pageRequests && this.features.pri) ||
        (cd?.stall === true && st?.s1stalld === false && this.features.stall));
    if (recoverable && !this.recordingSuppressed) {
      const request = this.pageRequests.raise({
        streamId: dev.streamId,
        virtualStreamId: dev.virtualStreamId,
        substreamId,
        perm: write ? Perm.WRITE : Perm.READ,
        address: BigInt.asUintN(64, inputAddress) & ~0xfffn,
        raisedAt: now,
      });
      if (request) {
        this.delivery.pageRequestRaised(request);
        out.outcome = "page-request";
        out.pageRequest = request;
        return out;
      }
    }
    out.outcome = "fault";
    // C_BAD_STREAMID has no vdevice to report through.
    out.recorded = dev !== undefined && faultRecorded(f, cd?.record) && !this.recordingSuppressed;
    if (out.recorded) this.events.report(event, unrecoverableFaultFromEvent(event), forwardedToGuest(event));
    return out;
  }

  // ---- DMA -----------------------------------------------------------------------------------

  /** Reads `length` bytes at `iova` as the device would (see DmaTransfer). */
  dmaRead(
    streamId: number,
    substreamId: number | undefined,
    iova: number | bigint,
    length: number,
    options: DmaOptions = {},
  ): DmaResult {
    checkInteger(length, 0, 2 ** 32, "length");
    return this.transfer(streamId, substreamId, options).read(BigInt(iova), length);
  }

  /** Writes `data` at `iova`; nothing is written unless every page translates. */
  dmaWrite(
    streamId: number,
    substreamId: number | undefined,
    iova: number | bigint,
    data: Uint8Array,
    options: DmaOptions = {},
  ): DmaResult {
    this.assertRunning("DmaWrite");
    return this.transfer(streamId, substreamId, options).write(BigInt(iova), data);
  }

  private transfer(streamId: number, substreamId: number | undefined, options: DmaOptions): DmaTransfer {
    return new DmaTransfer(this.memory, (iova, write) => {
      const result = this.translate(streamId, substreamId, iova, write, options);
      options.onTranslation?.(result);
      return result;
    });
  }

  // ---- invalidation ------------------------------------------------------------------------

  /** Seed CACHE_INVALIDATE (digest §1.3): see CommandHandling.invalidate. */
  invalidate(info: CacheInvalidateInfo): void {
    this.assertRunning("Invalidate");
    this.commands.invalidate(info);
  }

  /** iommufd HWPT_INVALIDATE (digest §2.4): see CommandHandling.invalidateCommands. */
  invalidateCommands(commands: readonly RawCommand[]): InvalidationOutcome {
    this.assertRunning("Invalidate");
    return this.commands.invalidateCommands(commands);
  }

  // ---- MSI ---------------------------------------------------------------------------------

  bindMsi(giova: number, gpa: number, size: number): MsiBinding {
    this.assertRunning("BindMsi");
    const before = this.domain.msiBinding;
    const binding = this.domain.bindMsi(giova, gpa, size);
    // Entries covering the doorbell page were cached as RAM; they must go.
    if (binding !== before) this.iotlb.invalidateVmid(this.vmid);
    return binding;
  }

  unbindMsi(giova: number): MsiBinding | undefined {
    this.assertRunning("UnbindMsi");
    const removed = this.domain.unbindMsi(giova);
    if (removed) this.iotlb.invalidateVmid(this.vmid);
    return removed;
  }

  // ---- events and page requests ------------------------------------------------------------

  /**
   * Reads (consumes) up to `max` queued events; page requests stay for takeDeliveries(). None
   * while quiesced: they are held.
   */
  readEvents(max?: number): QueuedEvent[] {
    return this.stopped ? [] : this.delivery.takeEvents(max);
  }

  /**
   * The next messages for the consumer, events (and lost-events markers) and page requests in
   * the order they happened, up to `max`. None while quiesced: they are held (issue 6), and go
   * out after resume() on whichever host runs the SMMU then.
   */
  takeDeliveries(max?: number): Delivery[] {
    return this.stopped ? [] : this.delivery.take(max);
  }

  /** Messages takeDeliveries() and readEvents() have handed out (the stream's next sequence). */
  get deliveredCount(): number {
    return this.delivery.delivered;
  }

  /** Answers a page request (see PageRequestQueue.respond for the errors). */
  respondPageRequest(cookie: number, code: number): PageRequestOutcome {
    this.assertRunning("RespondPageRequest");
    return this.pageRequests.respond(cookie, code);
  }

  /** Expires page requests whose deadline passed by `now`; none while quiesced (the clock is stopped for them). */
  expirePageRequests(now: number): PageRequestOutcome[] {
    return this.stopped ? [] : this.pageRequests.expire(now);
  }

  /** Answers FAILURE every outstanding page request (the SMMU is going away). */
  failPageRequests(): PageRequestOutcome[] {
    return this.pageRequests.expire(Number.POSITIVE_INFINITY);
  }

  // ---- migration (issue 6) -------------------------------------------------------------------

  get quiesced(): boolean {
    return this.stopped !== undefined;
  }

  /** FAILED_PRECONDITION while quiesced: the guest is stopped and its configuration frozen. */
  assertRunning(operation: string): void {
    if (!this.stopped) return;
    throw new SmmuError({
      code: "FAILED_PRECONDITION",
      reason: "SMMU_QUIESCED",
      message: `${operation} is refused while the SMMU is quiesced for migration`,
    });
  }

  /**
   * Stops the SMMU for migration at the caller's clock `now`: from here new events and page
   * requests are held (they queue, the vEVENTQ keeping its depth rule) so nothing the guest can
   * see changes; page-request deadlines stop running; configuration, guest calls and DMA writes
   * are refused (assertRunning); translations and DMA reads still run. Returns the dirty-log
   * pages (memory.pageSize each) that this SMMU's DMA wrote since the previous quiesce (the
   * migration resends them after its RAM copy). Idempotent: a second call returns the same.
   */
  quiesce(now = 0): { dirtyPages: number[] } {
    this.stopped ??= { at: now, dirtyPages: this.memory.takeDirtyPages() };
    return { dirtyPages: this.stopped.dirtyPages };
  }

  /**
   * Runs again at the caller's clock `now`: page requests get back the time they had left when
   * the SMMU stopped (or when they were raised, if later), and what was held is delivered by the
   * next takeDeliveries(). No-op when running.
   */
  resume(now = 0): void {
    const stopped = this.stopped;
    if (!stopped) return;
    this.pageRequests.postpone((r) => now - Math.max(r.raisedAt, stopped.at));
    this.stopped = undefined;
  }

  /**
   * The SMMU's state in the versioned binary format (device-state/smmu-state.ts); caches are
   * not part of it. FAILED_PRECONDITION unless quiesced, so that it cannot move while read.
   */
  exportState(): Uint8Array {
    if (!this.stopped) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "SMMU_NOT_QUIESCED",
        message: "the SMMU state can only be exported while it is quiesced",
      });
    }
    return encodeSmmuState(this.captureState(this.stopped.at));
  }

  /** The state as exported, page-request time left counted from `stoppedAt`. */
  private captureState(stoppedAt: number): SmmuState {
    return captureSmmuState({ ...this.stateParts(stoppedAt), devices: [...this.devices.values()] });
  }

  private stateParts(stoppedAt: number): Omit<SmmuStateParts, "devices"> {
    return {
      features: this.features,
      domain: this.domain,
      events: this.events,
      pageRequests: this.pageRequests,
      delivery: this.delivery,
      guestMemoryBytes: this.memory.size,
      pasidTable: this.seedStage1,
      stoppedAt,
    };
  }

  /** What the pre-copy tracking reads (SmmuChangeTracker), page-request time left counted from `stoppedAt`. */
  private tracked(stoppedAt: number): TrackedSmmu {
    return {
      runtime: () => captureSmmuRuntime(this.stateParts(stoppedAt)),
      mappingAt: (ipa) => this.domain.mappingAt(ipa),
      mappings: () => this.domain.mappings,
      deviceAt: (sid) => {
        const d = this.devices.get(sid);
        return d && deviceStateOf(d);
      },
      devices: () => [...this.devices.values()].sort((a, b) => a.streamId - b.streamId).map(deviceStateOf),
    };
  }

  /**
   * Pre-copy (issue 14): what changed in the state since the last read, captured at the caller's
   * clock `now` (or when the SMMU stopped), everything when `restart` or on the first read;
   * undefined when nothing did. The SMMU marks the mappings and devices it changes while
   * tracking, and a read compares only those (SmmuChangeTracker).
   */
  readChanges(restart: boolean, now = 0): SmmuDelta | undefined {
    return this.preCopy.changes(this.tracked(this.stopped?.at ?? now), restart, true);
  }

  /** What readChanges would hand out at `now`, without taking it. */
  pendingChanges(now = 0): SmmuDelta | undefined {
    return this.preCopy.changes(this.tracked(this.stopped?.at ?? now), false, false);
  }

  /** A pre-copy read started tracking and nothing ended it. */
  get tracking(): boolean {
    return this.preCopy.tracking;
  }

  /** Ends the pre-copy tracking (the migration resumed here or released the SMMU). */
  endTracking(): void {
    this.preCopy.end();
  }

  /**
   * Builds an SMMU from an exported state (or one decodeSmmuState already checked) on `memory`,
   * the guest RAM with the same bytes as on the source, quiesced (at options.now) until resume().
   * The VMID and the host's own limits (devices, mappings, cache sizes) are the importer's; the
   * guest-visible ones (queue depth, page-request capacity and timeout) come with the state.
   * Everything is checked before the SMMU is handed out: a replay step the model refuses
   * (overlapping or unbacked mapping, bad guest STE, vSID taken, doorbell) is INVALID_ARGUMENT
   * STATE_INCONSISTENT naming the entry; another RAM size is GUEST_MEMORY_SIZE_MISMATCH. Caches
   * start empty.
   */
  static importState(
    memory: GuestMemory,
    options: { vmid: number; limits?: Partial<SmmuLimits>; now?: number },
    exported: Uint8Array | SmmuState,
  ): Smmu {
    const s = exported instanceof Uint8Array ? decodeSmmuState(exported) : exported;
    if (s.guestMemoryBytes !== memory.size) {
      throw invalidArgument(
        "GUEST_MEMORY_SIZE_MISMATCH",
        `the state was exported with ${s.guestMemoryBytes} bytes of guest RAM, this RAM has ${memory.size}`,
        "guest_memory_bytes",
      );
    }
    const smmu = new Smmu({
      memory,
      vmid: options.vmid,
      features: s.features,
      stage2GranuleBits: s.stage2GranuleBits,
      limits: {
        ...options.limits,
        eventQueueDepth: s.eventQueueDepth,
        pageRequests: s.pageRequestCapacity,
        pageRequestTimeoutMs: s.pageRequestTimeoutMs,
      },
    });
    const now = options.now ?? 0;
    restoreSmmuState(
      {
        domain: smmu.domain,
        events: smmu.events,
        pageRequests: smmu.pageRequests,
        delivery: smmu.delivery,
        attachDevice: (streamId, virtualStreamId, pageRequests, guestSte) => {
          smmu.attachDevice(streamId, virtualStreamId, { pageRequests });
          if (guestSte) smmu.devices.get(streamId)!.guestSte = validateGuestSte(guestSte[0], guestSte[1]);
        },
        setPasidTable: (table) => (smmu.seedStage1 = table),
      },
      s,
      now,
    );
    smmu.stopped = { at: now, dirtyPages: [] };
    return smmu;
  }

  /**
   * Whether a stop-and-copy delta applies in place to this SMMU, quiesced and imported from the
   * state the delta follows (issue 14: the destination's finish costs what changed): only one
   * with this SMMU's features, granule, guest-visible limits and guest RAM size; false
   * otherwise (the caller merges the delta and builds anew). Its records are checked against
   * this SMMU as a full import checks a state (check-smmu-stop-delta.ts): a refusal is
   * INVALID_ARGUMENT STATE_* naming the entry. Changes nothing.
   */
  checkStopDelta(delta: SmmuDelta): boolean {
    return this.stopDeltaDevices(delta) !== undefined;
  }

  /**
   * Applies a stop-and-copy delta in place (checkStopDelta's rules, checked first: a refusal
   * changes nothing): the mappings and devices it names, the seed PASID table and MSI binding,
   * and the runtime state (events, page requests with the time they had left, counters) as a
   * full import of the state it makes would hold them. False, nothing done, for a delta
   * checkStopDelta does not apply in place.
   */
  applyStopDelta(delta: SmmuDelta): boolean {
    const records = this.stopDeltaDevices(delta);
    if (records === undefined) return false;
    const { state, mappings, devices } = delta;
    this.domain.applyChanges(mappings);
    for (const sid of [...devices.removed, ...records.map((r) => r.streamId)]) {
      const old = this.devices.get(sid);
      if (old === undefined) continue;
      this.forgetStream(old);
      this.devices.delete(sid);
      if (this.byVirtualSid.get(old.virtualStreamId) === old) this.byVirtualSid.delete(old.virtualStreamId);
    }
    for (const r of records) {
      this.devices.set(r.streamId, r);
      this.byVirtualSid.set(r.virtualStreamId, r);
    }
    if (!sameOrNone(state.pasidTable, this.seedStage1)) {
      this.seedStage1 = state.pasidTable;
      this.flushConfigCache();
    }
    const msi = state.msi && this.domain.msiBindingOf(state.msi.giova, state.msi.gpa, state.msi.size);
    const msiChanged = !sameOrNone(msi, this.domain.msiBinding);
    if (msiChanged) this.domain.replaceMsi(msi);
    if (msiChanged || mappings.changed.length + mappings.removed.length > 0)
      this.iotlb.invalidateVmid(this.vmid);
    restoreSmmuRuntime(
      { events: this.events, pageRequests: this.pageRequests, delivery: this.delivery },
      state,
      this.stopped!.at,
    );
    return true;
  }

  /**
   * The changed devices' records of a stop delta checked against this SMMU; undefined when it
   * does not apply in place. The features, granule, queue sizes, page-request timeout and guest
   * RAM size are the SMMU's creation options: no call changes them, so a source's stop delta
   * never does. One that carries others describes another SMMU (another stream table, event
   * ring, page-request table, every mapping's granule): that is a new device, built from the
   * merged state by the caller, whose full import checks decide (a guest RAM of another size is
   * refused there, GUEST_MEMORY_SIZE_MISMATCH); changing them in place would be that build.
   */
  private stopDeltaDevices(delta: SmmuDelta): DeviceRecord[] | undefined {
    const s = delta.state;
    if (
      !this.stopped ||
      s.stage2GranuleBits !== this.domain.granuleBits ||
      s.eventQueueDepth !== this.events.depth ||
      s.pageRequestCapacity !== this.pageRequests.capacity ||
      s.pageRequestTimeoutMs !== this.pageRequests.timeoutMs ||
      s.guestMemoryBytes !== this.memory.size ||
      !sameRecord(s.features, this.features)
    )
      return undefined;
    return checkSmmuStopDelta(
      {
        features: this.features,
        domain: this.domain,
        maxDevices: this.limits.devices,
        devices: this.devices,
        deviceByVirtualSid: (vsid) => this.byVirtualSid.get(vsid),
        pasidTable: this.seedStage1,
      },
      delta,
    );
  }

  listPageRequests(): PageRequest[] {
    return this.pageRequests.list();
  }

  // ---- state -------------------------------------------------------------------------------

  /** A snapshot of configuration and caches for dumps and debugging (smmu-dump.ts). */
  dump(): SmmuDump {
    return dumpSmmu({
      features: this.features,
      domain: this.domain,
      iotlb: this.iotlb,
      events: this.events,
      pageRequests: this.pageRequests,
      pasidTable: this.seedStage1,
      devices: [...this.devices.values()].map((d) => ({
        ...publicBinding(d),
        cachedContextDescriptors: d.state?.cachedCds ?? 0,
      })),
      quiesced: this.quiesced,
    });
  }

  private device(streamId: number): DeviceRecord {
    const d = this.devices.get(streamId);
    if (!d) throw notFound("DEVICE_NOT_FOUND", `no device with StreamID ${streamId}`, "streamId");
    return d;
  }

  private forgetStream(d: DeviceRecord): void {
    if (d.state) this.cachedCds -= d.state.cachedCds;
    d.state = undefined;
  }

  private forgetContextDescriptor(d: DeviceRecord, ssid: number): void {
    const st = d.state;
    if (!st) return;
    if (ssid === 0 && st.cd0) {
      st.cd0 = undefined;
      this.cachedCds--;
    } else if (st.cds.delete(ssid)) this.cachedCds--;
  }

  private flushConfigCache(): void {
    for (const d of this.devices.values()) d.state = undefined;
    this.cachedCds = 0;
  }
}

/** Both absent, or the same record. */
function sameOrNone<T extends object>(a: T | undefined, b: T | undefined): boolean {
  return a === undefined || b === undefined ? a === b : sameRecord(a, b);
}

/** HWPT_ALLOC flag linking the HWPT to a fault queue (IOMMU_HWPT_FAULT_ID_VALID, digest §2.1). */
export const HWPT_FAULT_ID_VALID = 1 << 2;
