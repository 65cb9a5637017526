import {
  readPageFaults,
  readVEvents,
  watchReadable,
  type FdWatch,
  type PageFault,
} from "@vplane/host-kernel";
import {
  decodeEventRecord,
  unrecoverableFaultFromEvent,
  type PageRequest,
  type QueuedEvent,
} from "@vplane/smmuv3";
import type { EventLog } from "./event-log.js";

/** SMMUv3's vEVENT payload: the 32-byte event record (struct iommu_vevent_arm_smmuv3). */
const EVENT_RECORD_BYTES = 32;

/** What the stream delivers, in the order the kernel gave it. */
export type NativeDelivery =
  { kind: "event"; queued: QueuedEvent } | { kind: "page-request"; request: PageRequest };

/**
 * Moves what the kernel reports for one native SMMU into its event log: vEVENTQ records (the
 * raw event with the SID the kernel rewrote to the vSID; a LOST_EVENTS header becomes the log's
 * queue-overflow marker) and fault-queue page faults (page requests, answered through the
 * fault fd by cookie). Woken by the fds' readability (libuv poll); while held (quiesced for
 * migration) it keeps what it reads, in order, and delivers it on release.
 */
export class NativeEventStream {
  private watches: FdWatch[] = [];
  private heldDeliveries: NativeDelivery[] | undefined;
  /** The kernel sequence the next vEVENT will carry (0 on a new vEVENTQ). */
  nextSequence = 0;
  eventsReported = 0;
  eventsDropped = 0;
  /** Page requests delivered and not yet answered, by cookie. */
  readonly outstanding = new Map<number, PageRequest>();

  constructor(
    private readonly log: EventLog,
    private readonly veventqFd: number,
    private readonly faultFd: number,
    /** The physical and virtual StreamID of an iommufd dev_id; undefined once detached. */
    private readonly deviceOf: (devId: number) => { streamId: number; virtualStreamId: number } | undefined,
    private readonly pageRequestTimeoutMs: number,
    private readonly clock: () => number,
  ) {}

  start(): void {
    if (this.watches.length > 0) return;
    for (const fd of [this.veventqFd, this.faultFd]) {
      this.watches.push(watchReadable(fd, () => this.drain(), { keepAlive: false }));
    }
  }

  /** Reads everything the kernel holds now (also called after each operation, like the emulated backend). */
  drain(): void {
    for (const v of readVEvents(this.veventqFd, EVENT_RECORD_BYTES)) {
      if (v.lost) {
        this.eventsDropped += Math.max(1, (v.sequence - this.nextSequence) & 0x7fff_ffff);
        this.deliver({ kind: "event", queued: { sequence: v.sequence, lost: true } });
        this.nextSequence = v.sequence;
        continue;
      }
      const event = decodeEventRecord(v.data);
      this.eventsReported++;
      this.nextSequence = (v.sequence + 1) & 0x7fff_ffff;
      this.deliver({
        kind: "event",
        queued: {
          sequence: v.sequence,
          lost: false,
          event,
          seedFault: unrecoverableFaultFromEvent(event),
          // Every vEVENT is one the kernel forwarded (arm_smmu_handle_event → vmaster).
          forwarded: true,
        },
      });
    }
    for (const fault of readPageFaults(this.faultFd)) {
      const request = this.pageRequest(fault);
      if (request) this.deliver({ kind: "page-request", request });
    }
  }

  /** Stops delivering to the log (quiesce); what arrives meanwhile is kept. */
  hold(): void {
    this.drain();
    this.heldDeliveries ??= [];
  }

  /** Delivers what was kept, in order, and goes on delivering. */
  release(): void {
    const held = this.heldDeliveries ?? [];
    this.heldDeliveries = undefined;
    for (const d of held) this.deliver(d);
  }

  /** What is held, undelivered (for the exported state). */
  get held(): readonly NativeDelivery[] {
    return this.heldDeliveries ?? [];
  }

  /** Puts deliveries an imported state held back in front of what the kernel reports. */
  restoreHeld(deliveries: NativeDelivery[]): void {
    this.heldDeliveries = [...deliveries, ...(this.heldDeliveries ?? [])];
  }

  close(): void {
    for (const w of this.watches) w.close();
    this.watches = [];
  }

  private deliver(d: NativeDelivery): void {
    if (d.kind === "page-request") this.outstanding.set(d.request.cookie, d.request);
    if (this.heldDeliveries) this.heldDeliveries.push(d);
    else if (d.kind === "event") this.log.appendEvent(d.queued);
    else this.log.appendPageRequest(d.request);
  }

  private pageRequest(fault: PageFault): PageRequest | undefined {
    const device = this.deviceOf(fault.devId);
    if (!device) return undefined;
    const now = this.clock();
    return {
      cookie: fault.cookie,
      streamId: device.streamId,
      virtualStreamId: device.virtualStreamId,
      substreamId: fault.flags & 1 ? fault.pasid : undefined,
      groupId: fault.groupId,
      flags: fault.flags,
      perm: fault.perm,
      address: fault.address,
      raisedAt: now,
      deadline: now + this.pageRequestTimeoutMs,
    };
  }
}
