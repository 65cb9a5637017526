import {
  HwptAllocFlag,
  IommufdType,
  KernelError,
  attachIommufdPt,
  detachIommufdPt,
  hwptAlloc,
  hwptInvalidate,
  ioasMap,
  ioasUnmap,
  iommufdDestroy,
  respondPageFault,
  vdeviceAlloc,
  type MappedRegion,
} from "@vplane/host-kernel";
import {
  Perm,
  SmmuError,
  encodeSmmuState,
  Stage2Domain,
  decodeIdRegisters,
  unrecoverableFaultFromEvent,
  validateGuestSte,
  type DeviceBinding,
  type GuestSte,
  type InvalidationOutcome,
  type MsiBinding,
  type RawCommand,
  type SmmuDump,
  type SmmuFeatures,
  type SmmuState,
  type Stage2Mapping,
  type TranslationResult,
} from "@vplane/smmuv3";
import { EventLog } from "./event-log.js";
import { NativeEventStream } from "./native-event-stream.js";
import { commandRefusal, kernelRefusal, steRefusal } from "./native-kernel-errors.js";
import { NativeSmmuObjects, type NativeSmmuFds } from "./native-smmu-objects.js";
import { checkImportableOnNative, nativeSmmuState } from "./native-smmu-state.js";
import { LIMITS } from "./service-limits.js";
import type { DmaOutcome, InvalidationItem, SmmuBackend } from "./smmu-backend.js";
import { exportedSmmuState, type ExportedSmmuState } from "./smmu-state-format.js";

/** What a native SMMU is opened on. */
export interface NativeSmmuOptions {
  fds: NativeSmmuFds;
  /** The guest RAM mapped into this process: IOAS_MAP takes its user addresses. */
  guestRam: MappedRegion;
  /** The service's label for this SMMU's stage-2 domain; the kernel's own VMID is not visible through iommufd. */
  vmid: number;
  eventQueueDepth: number;
  pageRequestTimeoutMs: number;
  clock?: () => number;
  /** Called once when the SMMU closes, after its iommufd objects are gone: whoever owns the fds closes them. */
  onClose?: () => void;
}

interface NativeDevice {
  streamId: number;
  virtualStreamId: number;
  pageRequests: boolean;
  devId: number;
  deviceFd: number;
  vdeviceId: number;
  /** The nested HWPT made from the guest STE, with the words as the guest gave them. */
  nested: { hwptId: number; ste: GuestSte; given: [bigint, bigint] } | undefined;
}

/** The reason for what a native SMMU cannot do: hardware answers it, or mainline never took it. */
const NOT_ON_NATIVE = {
  translate:
    "the host's SMMU translates in hardware; iommufd has no call that walks a translation for software (use a DMA of the assigned device)",
  seed: "the seed series' VFIO_IOMMU_SET_PASID_TABLE never reached mainline; on a native SMMU the guest's stage 1 is an iommufd guest STE (AttachPasidTable's STE form)",
  msi: "iommufd maps the host's MSI doorbell itself: it reserves IPA 0x8000000-0x80fffff (MSI_IOVA_BASE, MSI_IOVA_LENGTH) in the stage-2 parent and installs the ITS doorbell there when a device attaches; the guest's stage 1 maps its doorbell IOVA to that IPA, so there is nothing to bind",
} as const;

function unimplemented(reason: string, message: string): SmmuError {
  return new SmmuError({ code: "UNIMPLEMENTED", reason, message });
}

/**
 * The native backend (issue 13 point 3): one virtual SMMU as iommufd nesting on the host's
 * SMMUv3. Stage 2 is the IOAS under a NEST_PARENT HWPT (MapStage2 → IOAS_MAP of the guest RAM);
 * a device is a vDEVICE (its vSID) attached to the parent; the guest's STE becomes a nested HWPT
 * on the vIOMMU; raw invalidation commands go to HWPT_INVALIDATE on the vIOMMU with the kernel's
 * handled count passed through; the vEVENTQ and the fault queue feed the event stream. Kernel
 * refusals keep their errno and take the emulated backend's reason names. Stage-2 bookkeeping
 * (what is mapped, for export and for the same validation as the emulated backend) is the
 * model's Stage2Domain.
 */
export class NativeSmmuBackend implements SmmuBackend {
  readonly kind = "NATIVE" as const;
  readonly features: SmmuFeatures;
  readonly log: EventLog;
  readonly objects: NativeSmmuObjects;
  readonly domain: Stage2Domain;
  readonly stream: NativeEventStream;
  private readonly devicesBySid = new Map<number, NativeDevice>();
  private stopped = false;
  private closed = false;
  /** The VMM whose fds this SMMU works on has gone: its objects are destroyed, every call refused. */
  private vmmGone = false;

  /**
   * Makes the SMMU's iommufd objects (NativeSmmuObjects: nothing half-made on failure) or, with
   * `imported`, the SMMU an exported state describes, quiesced until resume(): checked first
   * (checkImportableOnNative), then its mappings, devices and guest STEs replayed into the
   * kernel, its held events kept for the stream. A replay step the kernel refuses closes
   * everything again.
   */
  constructor(
    private readonly options: NativeSmmuOptions,
    imported?: SmmuState,
  ) {
    this.log = new EventLog(LIMITS.eventBuffer, BigInt(imported?.delivered ?? 0));
    this.objects = NativeSmmuObjects.create(options.fds, options.eventQueueDepth);
    try {
      this.features = decodeIdRegisters(this.objects.hwInfo.smmuv3!.idr);
      this.domain = new Stage2Domain({
        vmid: options.vmid,
        granuleBits: 12,
        ipaBits: this.features.outputAddressBits,
        backingSize: options.guestRam.length,
        maxMappings: LIMITS.maxMappingsPerSmmu,
      });
    } catch (error) {
      this.objects.close();
      throw error;
    }
    this.stream = new NativeEventStream(
      this.log,
      this.objects.veventq.fd,
      this.objects.faultQueue.fd,
      (devId) => [...this.devicesBySid.values()].find((d) => d.devId === devId),
      options.pageRequestTimeoutMs,
      options.clock ?? Date.now,
    );
    this.stream.start();
    if (imported) {
      try {
        this.replay(imported);
      } catch (error) {
        this.close();
        throw error;
      }
    }
  }

  private replay(state: SmmuState): void {
    checkImportableOnNative(state, {
      features: this.features,
      guestMemoryBytes: this.options.guestRam.length,
    });
    for (const m of state.mappings) this.mapStage2(m.ipa, m.hostAddress, m.size, m.perm);
    for (const d of state.devices) {
      this.attachDevice(d.streamId, d.virtualStreamId, d.pageRequests);
      if (d.guestSte) this.setGuestSte(d.streamId, d.guestSte, 0);
    }
    this.stream.eventsReported = state.eventsReported;
    this.stream.eventsDropped = state.eventsDropped;
    this.stream.hold();
    this.stream.restoreHeld(
      state.events.map((e) => ({
        kind: "event" as const,
        queued: e.lost ? e : { ...e, seedFault: unrecoverableFaultFromEvent(e.event), forwarded: true },
      })),
    );
    this.stopped = true;
  }

  get vmid(): number {
    return this.domain.vmid;
  }

  get quiesced(): boolean {
    return this.stopped;
  }

  // ---- stage 2 -------------------------------------------------------------------------------

  /** Validated as the emulated backend validates (VFIO MAP_DMA rules), then IOAS_MAP; undone if the kernel refuses. */
  mapStage2(ipa: number, hostAddress: number, size: number, perm: number): void {
    this.assertRunning("MapStage2");
    this.domain.map(ipa, hostAddress, size, perm);
    try {
      ioasMap(this.objects.iommufd, this.objects.ioasId, {
        userVa: BigInt(this.options.guestRam.address) + BigInt(hostAddress),
        length: size,
        iova: ipa,
        read: (perm & Perm.READ) !== 0,
        write: (perm & Perm.WRITE) !== 0,
      });
    } catch (error) {
      this.domain.unmap(ipa, size);
      throw this.refused(error, "KERNEL_REFUSED_MAP", "ipa");
    }
  }

  /** The mappings the range covers, each IOAS_UNMAPped whole (the kernel unmaps whole areas). */
  unmapStage2(ipa: number, size: number): number {
    this.assertRunning("UnmapStage2");
    const { bytes, removed } = this.domain.unmap(ipa, size);
    for (const m of removed) {
      try {
        ioasUnmap(this.objects.iommufd, this.objects.ioasId, m.ipa, m.size);
      } catch (error) {
        throw this.refused(error, "KERNEL_REFUSED_UNMAP", "ipa");
      }
    }
    this.stream.drain();
    return bytes;
  }

  mappings(): readonly Stage2Mapping[] {
    return this.domain.mappings;
  }

  // ---- devices -------------------------------------------------------------------------------

  /** VDEVICE_ALLOC (virt_id = the vSID), then the device's DMA goes through stage 2 only. */
  attachDevice(streamId: number, virtualStreamId: number, pageRequests: boolean): DeviceBinding {
    this.assertRunning("AttachDevice");
    const devId = this.objects.devIds.get(streamId);
    const deviceFd = this.options.fds.devices.get(streamId);
    if (devId === undefined || deviceFd === undefined) {
      throw new SmmuError({
        code: "NOT_FOUND",
        reason: "DEVICE_NOT_ASSIGNED",
        message: `no VFIO device with StreamID ${streamId} was handed to this native SMMU`,
        field: "streamId",
        errno: 2,
      });
    }
    if (this.devicesBySid.has(streamId)) {
      throw new SmmuError({
        code: "ALREADY_EXISTS",
        reason: "DEVICE_ALREADY_BOUND",
        message: `StreamID ${streamId} already has a vdevice`,
        field: "streamId",
        errno: 17,
      });
    }
    let vdeviceId: number;
    try {
      vdeviceId = vdeviceAlloc(this.objects.iommufd, {
        viommuId: this.objects.viommuId,
        devId,
        virtId: virtualStreamId,
      });
    } catch (error) {
      throw this.refused(error, "KERNEL_REFUSED_VDEVICE", "virtualStreamId");
    }
    try {
      attachIommufdPt(deviceFd, this.objects.parentHwptId);
    } catch (error) {
      quietly(() => iommufdDestroy(this.objects.iommufd, vdeviceId));
      throw this.refused(error, "KERNEL_REFUSED_ATTACH", "streamId");
    }
    const device: NativeDevice = {
      streamId,
      virtualStreamId,
      pageRequests,
      devId,
      deviceFd,
      vdeviceId,
      nested: undefined,
    };
    this.devicesBySid.set(streamId, device);
    return binding(device);
  }

  /** The device is blocked (DETACH_IOMMUFD_PT), its nested HWPT and vDEVICE destroyed. */
  detachDevice(streamId: number): number {
    this.assertRunning("DetachDevice");
    const d = this.device(streamId);
    quietly(() => detachIommufdPt(d.deviceFd));
    if (d.nested) quietly(() => iommufdDestroy(this.objects.iommufd, d.nested!.hwptId));
    quietly(() => iommufdDestroy(this.objects.iommufd, d.vdeviceId));
    this.devicesBySid.delete(streamId);
    return 0;
  }

  devices(): DeviceBinding[] {
    return [...this.devicesBySid.values()].sort((a, b) => a.streamId - b.streamId).map(binding);
  }

  // ---- guest stage 1 -------------------------------------------------------------------------

  attachPasidTable(): void {
    throw unimplemented("SEED_PASID_TABLE_NOT_NATIVE", NOT_ON_NATIVE.seed);
  }

  detachPasidTable(): void {
    throw unimplemented("SEED_PASID_TABLE_NOT_NATIVE", NOT_ON_NATIVE.seed);
  }

  /**
   * HWPT_ALLOC on the vIOMMU with the guest's STE (the kernel validates it: EIO for a field or
   * Config a guest may not set), linked to the fault queue when the device takes page requests,
   * then the device attached to it; the HWPT it had before is destroyed.
   */
  setGuestSte(streamId: number, ste: readonly [bigint, bigint], flags: number): GuestSte {
    this.assertRunning("AttachPasidTable");
    const d = this.device(streamId);
    const words = [BigInt.asUintN(64, ste[0]), BigInt.asUintN(64, ste[1])] as [bigint, bigint];
    const data = new Uint8Array(16);
    const view = new DataView(data.buffer);
    view.setBigUint64(0, words[0], true);
    view.setBigUint64(8, words[1], true);
    const linkFaults = d.pageRequests || (flags & HwptAllocFlag.IOMMU_HWPT_FAULT_ID_VALID) !== 0;
    let hwptId: number;
    try {
      hwptId = hwptAlloc(this.objects.iommufd, {
        devId: d.devId,
        ptId: this.objects.viommuId,
        flags:
          (flags & ~HwptAllocFlag.IOMMU_HWPT_FAULT_ID_VALID) |
          (linkFaults ? HwptAllocFlag.IOMMU_HWPT_FAULT_ID_VALID : 0),
        dataType: IommufdType.IOMMU_HWPT_DATA_ARM_SMMUV3,
        data,
        ...(linkFaults ? { faultId: this.objects.faultQueue.id } : {}),
      });
    } catch (error) {
      throw error instanceof KernelError ? steRefusal(error, words, flags) : error;
    }
    try {
      attachIommufdPt(d.deviceFd, hwptId);
    } catch (error) {
      quietly(() => iommufdDestroy(this.objects.iommufd, hwptId));
      throw this.refused(error, "KERNEL_REFUSED_ATTACH", "streamId");
    }
    if (d.nested) quietly(() => iommufdDestroy(this.objects.iommufd, d.nested!.hwptId));
    const accepted = validateGuestSte(words[0], words[1]);
    d.nested = { hwptId, ste: accepted, given: words };
    if (linkFaults) d.pageRequests = true;
    return accepted;
  }

  /** Back to stage 2 only: the device attached to the parent, the nested HWPT destroyed. */
  clearGuestSte(streamId: number): void {
    this.assertRunning("DetachPasidTable");
    const d = this.device(streamId);
    if (!d.nested) return;
    try {
      attachIommufdPt(d.deviceFd, this.objects.parentHwptId);
    } catch (error) {
      throw this.refused(error, "KERNEL_REFUSED_ATTACH", "streamId");
    }
    quietly(() => iommufdDestroy(this.objects.iommufd, d.nested!.hwptId));
    d.nested = undefined;
  }

  // ---- invalidation --------------------------------------------------------------------------

  /**
   * Runs of raw commands go to HWPT_INVALIDATE on the vIOMMU, one call per run; the kernel's
   * handled count is passed through and its refusal names the entry. A seed-form (structured)
   * entry has no iommufd form: it stops the batch with UNIMPLEMENTED at its index.
   */
  invalidate(items: readonly InvalidationItem[]): InvalidationOutcome {
    this.assertRunning("Invalidate");
    let i = 0;
    while (i < items.length) {
      const item = items[i]!;
      if (!("raw" in item)) {
        return {
          handled: i,
          error: unimplemented("SEED_INVALIDATE_NOT_NATIVE", NOT_ON_NATIVE.seed).atBatchIndex(i),
        };
      }
      const run: RawCommand[] = [];
      for (let j = i; j < items.length && "raw" in items[j]!; j++)
        run.push((items[j] as { raw: RawCommand }).raw);
      const entries = new Uint8Array(run.length * 16);
      const view = new DataView(entries.buffer);
      run.forEach(([c0, c1], n) => {
        view.setBigUint64(n * 16, BigInt.asUintN(64, c0), true);
        view.setBigUint64(n * 16 + 8, BigInt.asUintN(64, c1), true);
      });
      const result = hwptInvalidate(this.objects.iommufd, {
        hwptId: this.objects.viommuId,
        dataType: IommufdType.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
        entryLen: 16,
        entries,
      });
      if (result.error) {
        const index = i + result.handled;
        const known = (vsid: number) =>
          [...this.devicesBySid.values()].some((d) => d.virtualStreamId === vsid);
        const context = { features: this.features, knownVsid: known };
        return { handled: index, error: commandRefusal(result.error, run[result.handled]!, index, context) };
      }
      i += run.length;
    }
    return { handled: items.length };
  }

  // ---- what only the emulated backend answers ------------------------------------------------

  bindMsi(): MsiBinding {
    throw new SmmuError({
      code: "FAILED_PRECONDITION",
      reason: "MSI_DOORBELL_KERNEL_MANAGED",
      message: NOT_ON_NATIVE.msi,
    });
  }

  unbindMsi(): boolean {
    throw new SmmuError({
      code: "FAILED_PRECONDITION",
      reason: "MSI_DOORBELL_KERNEL_MANAGED",
      message: NOT_ON_NATIVE.msi,
    });
  }

  translate(): TranslationResult {
    throw unimplemented("TRANSLATION_IN_HARDWARE", NOT_ON_NATIVE.translate);
  }

  dma(): Promise<DmaOutcome> {
    return Promise.reject(
      unimplemented(
        "DMA_IN_HARDWARE",
        "a native SMMU's DMA is the assigned device's own; vplane does not issue DMA on the host's SMMU",
      ),
    );
  }

  /** Answers the page-fault group by its cookie through the fault fd (iommu_hwpt_page_response). */
  respondPageRequest(cookie: number, code: number): void {
    this.assertVmmPresent("RespondPageRequest");
    try {
      respondPageFault(this.objects.faultQueue.fd, cookie, code);
    } catch (error) {
      throw this.refused(error, "KERNEL_REFUSED_PAGE_RESPONSE", "cookie");
    }
    this.stream.outstanding.delete(cookie);
  }

  dump(): SmmuDump {
    throw unimplemented(
      "DUMP_NOT_NATIVE",
      "a native SMMU's caches and tables live in the host's SMMU and kernel; GetSmmu and the exported state describe its configuration",
    );
  }

  // ---- migration -----------------------------------------------------------------------------

  quiesce(): { pages: bigint[]; pageSize: number } {
    this.assertVmmPresent("QuiesceDevices");
    if (!this.stopped) {
      this.stream.hold();
      this.stopped = true;
    }
    // The assigned device's DMA dirties pages the VMM's own dirty tracking sees (VFIO); none here.
    return { pages: [], pageSize: 4096 };
  }

  resume(): void {
    this.assertVmmPresent("ResumeDevices");
    if (!this.stopped) return;
    this.stopped = false;
    this.stream.release();
  }

  /** The shared state format (native-smmu-state.ts); FAILED_PRECONDITION unless quiesced, or while page requests wait. */
  exportState(): ExportedSmmuState {
    this.assertVmmPresent("ExportDeviceState");
    if (!this.stopped) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "SMMU_NOT_QUIESCED",
        message: "the SMMU state can only be exported while it is quiesced",
      });
    }
    if (this.stream.outstanding.size > 0) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "PAGE_REQUESTS_OUTSTANDING",
        message: `${this.stream.outstanding.size} page request(s) wait for an answer in the kernel's fault queue: answer them first`,
      });
    }
    return exportedSmmuState(
      encodeSmmuState(
        nativeSmmuState({
          features: this.features,
          eventQueueDepth: this.options.eventQueueDepth,
          pageRequestTimeoutMs: this.options.pageRequestTimeoutMs,
          guestMemoryBytes: this.options.guestRam.length,
          mappings: [...this.domain.mappings],
          devices: this.devices().map((b) => {
            const given = this.devicesBySid.get(b.streamId)!.nested?.given;
            return {
              streamId: b.streamId,
              virtualStreamId: b.virtualStreamId,
              pageRequests: b.pageRequests,
              guestSte: given,
            };
          }),
          stream: {
            nextSequence: this.stream.nextSequence,
            eventsReported: this.stream.eventsReported,
            eventsDropped: this.stream.eventsDropped,
            delivered: Number(this.log.nextSequence),
            held: this.stream.held,
          },
        }),
      ),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.vmmGone) this.destroyObjects();
    this.log.close();
    this.options.onClose?.();
  }

  /**
   * The VMM that handed the fds over has gone (its handoff connection ended): the iommufd
   * objects are destroyed now, while the fds are still open, and every later call that would
   * reach the kernel answers FAILED_PRECONDITION VMM_GONE. What the service keeps of the SMMU
   * (its record, its configuration) stays readable, and close() (DeleteSmmu) works.
   */
  markVmmGone(): void {
    if (this.closed || this.vmmGone) return;
    this.vmmGone = true;
    this.destroyObjects();
  }

  /** Every iommufd object of this SMMU, devices first (vDEVICE, nested HWPT), then NativeSmmuObjects. */
  private destroyObjects(): void {
    this.stream.close();
    for (const d of this.devicesBySid.values()) {
      quietly(() => detachIommufdPt(d.deviceFd));
      if (d.nested) quietly(() => iommufdDestroy(this.objects.iommufd, d.nested!.hwptId));
      quietly(() => iommufdDestroy(this.objects.iommufd, d.vdeviceId));
    }
    this.objects.close();
  }

  private assertVmmPresent(operation: string): void {
    if (this.vmmGone) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "VMM_GONE",
        message: `${operation} is refused: the VMM that handed this native SMMU's iommufd and device fds over has gone, and its iommufd objects with it; delete the SMMU (a new one needs the VMM's fds again)`,
      });
    }
  }

  assertRunning(operation: string): void {
    this.assertVmmPresent(operation);
    if (this.stopped) {
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "SMMU_QUIESCED",
        message: `${operation} is refused while the SMMU is quiesced for migration`,
      });
    }
  }

  private device(streamId: number): NativeDevice {
    const d = this.devicesBySid.get(streamId);
    if (!d) {
      throw new SmmuError({
        code: "NOT_FOUND",
        reason: "DEVICE_NOT_FOUND",
        message: `no device with StreamID ${streamId}`,
        field: "streamId",
        errno: 2,
      });
    }
    return d;
  }

  private refused(error: unknown, reason: string, field: string): Error {
    return error instanceof KernelError ? kernelRefusal(error, reason, field) : (error as Error);
  }
}

function binding(d: NativeDevice): DeviceBinding {
  return {
    streamId: d.streamId,
    virtualStreamId: d.virtualStreamId,
    pageRequests: d.pageRequests,
    guestSte: d.nested?.ste,
  };
}

function quietly(action: () => void): void {
  try {
    action();
  } catch {
    // Teardown goes on (best effort): a later object must not outlive an earlier one's failure.
  }
}
