import type { KernelError } from "@vplane/host-kernel";
import {
  HwptAllocFlag,
  IommufdType,
  bindIommufd,
  closeFd,
  faultQueueAlloc,
  getHwInfo,
  hwptAlloc,
  ioasAlloc,
  iommufdDestroy,
  veventqAlloc,
  viommuAlloc,
  type HwInfo,
} from "@vplane/host-kernel";

/** The fds a native SMMU works on: an iommufd and the assigned devices' VFIO cdevs. */
export interface NativeSmmuFds {
  iommufd: number;
  /** VFIO device cdev fds by the device's physical StreamID. */
  devices: ReadonlyMap<number, number>;
}

/** A kernel call of the setup that failed, and at which step (for the caller's error reason). */
export class NativeSetupError extends Error {
  constructor(
    readonly step: string,
    readonly failure: KernelError | Error,
  ) {
    super(`${step}: ${failure.message}`);
    this.name = "NativeSetupError";
  }
}

/**
 * One virtual SMMU's iommufd objects (issue 13 point 3, CreateSmmu): every device bound to the
 * iommufd, IOMMU_GET_HW_INFO of the first (it must be an SMMUv3), an IOAS holding the guest RAM,
 * the NEST_PARENT HWPT over it (stage 2), the ARM_SMMUV3 vIOMMU on that parent, its vEVENTQ and
 * a fault queue for page requests. Made in that order; a failure destroys what was made, in
 * reverse, and names the step. close() destroys in reverse too (queues, vIOMMU, parent, IOAS;
 * the fds are the caller's).
 */
export class NativeSmmuObjects {
  private constructor(
    readonly iommufd: number,
    readonly devIds: ReadonlyMap<number, number>,
    readonly hwInfo: HwInfo,
    readonly ioasId: number,
    readonly parentHwptId: number,
    readonly viommuId: number,
    readonly veventq: { id: number; fd: number },
    readonly faultQueue: { id: number; fd: number },
  ) {}

  static create(fds: NativeSmmuFds, eventQueueDepth: number): NativeSmmuObjects {
    const undo: (() => void)[] = [];
    const step = <T>(name: string, make: () => T, destroy?: (made: T) => void): T => {
      let made: T;
      try {
        made = make();
      } catch (error) {
        for (const u of undo.reverse()) u();
        throw new NativeSetupError(name, error as Error);
      }
      if (destroy) undo.push(() => quietly(() => destroy(made)));
      return made;
    };
    const { iommufd } = fds;
    const devIds = new Map<number, number>();
    for (const [streamId, deviceFd] of fds.devices) {
      devIds.set(
        streamId,
        step(`VFIO_DEVICE_BIND_IOMMUFD (StreamID ${streamId})`, () => bindIommufd(deviceFd, iommufd)),
      );
    }
    const first = devIds.values().next().value;
    if (first === undefined)
      throw new NativeSetupError("devices", new Error("a native SMMU needs at least one assigned device"));
    const hwInfo = step("IOMMU_GET_HW_INFO", () => getHwInfo(iommufd, first));
    if (hwInfo.type !== IommufdType.IOMMU_HW_INFO_TYPE_ARM_SMMUV3) {
      throw new NativeSetupError(
        "IOMMU_GET_HW_INFO",
        new Error(`the device's IOMMU is of type ${hwInfo.type}, not an SMMUv3 (2)`),
      );
    }
    const destroy = (id: number) => iommufdDestroy(iommufd, id);
    const ioasId = step("IOMMU_IOAS_ALLOC", () => ioasAlloc(iommufd), destroy);
    const parentHwptId = step(
      "IOMMU_HWPT_ALLOC (NEST_PARENT)",
      () =>
        hwptAlloc(iommufd, { devId: first, ptId: ioasId, flags: HwptAllocFlag.IOMMU_HWPT_ALLOC_NEST_PARENT }),
      destroy,
    );
    const viommuId = step(
      "IOMMU_VIOMMU_ALLOC (ARM_SMMUV3)",
      () =>
        viommuAlloc(iommufd, {
          type: IommufdType.IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
          devId: first,
          hwptId: parentHwptId,
        }),
      destroy,
    );
    const veventq = step(
      "IOMMU_VEVENTQ_ALLOC",
      () =>
        veventqAlloc(iommufd, {
          viommuId,
          type: IommufdType.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
          depth: eventQueueDepth,
        }),
      (q) => closeQueue(iommufd, q),
    );
    const faultQueue = step(
      "IOMMU_FAULT_QUEUE_ALLOC",
      () => faultQueueAlloc(iommufd),
      (q) => closeQueue(iommufd, q),
    );
    return new NativeSmmuObjects(
      iommufd,
      devIds,
      hwInfo,
      ioasId,
      parentHwptId,
      viommuId,
      veventq,
      faultQueue,
    );
  }

  /** Destroys every object, in reverse order of creation; errors are ignored (best effort). */
  close(): void {
    quietly(() => closeQueue(this.iommufd, this.faultQueue));
    quietly(() => closeQueue(this.iommufd, this.veventq));
    for (const id of [this.viommuId, this.parentHwptId, this.ioasId])
      quietly(() => iommufdDestroy(this.iommufd, id));
  }
}

/** A queue's fd is closed first: the kernel keeps the object while its fd is open. */
function closeQueue(iommufd: number, queue: { id: number; fd: number }): void {
  quietly(() => closeFd(queue.fd));
  iommufdDestroy(iommufd, queue.id);
}

function quietly(action: () => void): void {
  try {
    action();
  } catch {
    // Teardown goes on: a later object must not outlive an earlier one's failure to go.
  }
}
