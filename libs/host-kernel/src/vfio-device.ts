import { ioctl } from "./ioctl.js";
import {
  IommufdLayouts as L,
  VFIO_REGION_INFO_SIZE_FIELD,
  hostIommufdIoctls as ioctls,
} from "./iommufd-uapi.js";
import { withNativeBuffer } from "./native-memory.js";

/**
 * A VFIO device through its cdev (/dev/vfio/devices/vfioN, linux/vfio.h): bound to an iommufd,
 * attached to a page table (an IOAS, a HWPT, or a nested HWPT), and its regions described.
 */

/** VFIO_DEVICE_BIND_IOMMUFD: the device's id in that iommufd (dev_id of the iommufd calls). */
export function bindIommufd(deviceFd: number, iommufd: number): number {
  const s = L.vfio_device_bind_iommufd;
  return withNativeBuffer(s.size, (b) => {
    b.setU32(s.argsz, s.size).setI32(s.iommufd, iommufd);
    ioctl(deviceFd, ioctls().VFIO_DEVICE_BIND_IOMMUFD, b);
    return b.u32(s.out_devid);
  });
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: the device's DMA goes through `ptId` (replacing what it had). */
export function attachIommufdPt(deviceFd: number, ptId: number): void {
  const s = L.vfio_device_attach_iommufd_pt;
  withNativeBuffer(s.size, (b) => {
    b.setU32(s.argsz, s.size).setU32(s.pt_id, ptId);
    ioctl(deviceFd, ioctls().VFIO_DEVICE_ATTACH_IOMMUFD_PT, b);
  });
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: the device is blocked from DMA until attached again. */
export function detachIommufdPt(deviceFd: number): void {
  const s = L.vfio_device_detach_iommufd_pt;
  withNativeBuffer(s.size, (b) => {
    b.setU32(s.argsz, s.size);
    ioctl(deviceFd, ioctls().VFIO_DEVICE_DETACH_IOMMUFD_PT, b);
  });
}

export interface VfioRegion {
  flags: number;
  size: bigint;
  /** Where the region is in the device fd's offset space (for pread/pwrite and mmap). */
  offset: bigint;
}

/** VFIO_DEVICE_GET_REGION_INFO of region `index` (PCI: BAR0 is 0). */
export function regionInfo(deviceFd: number, index: number): VfioRegion {
  const s = L.vfio_region_info;
  return withNativeBuffer(s.size, (b) => {
    b.setU32(s.argsz, s.size).setU32(s.index, index);
    ioctl(deviceFd, ioctls().VFIO_DEVICE_GET_REGION_INFO, b);
    return { flags: b.u32(s.flags), size: b.u64(VFIO_REGION_INFO_SIZE_FIELD), offset: b.u64(s.offset) };
  });
}
