import { hostArchitecture, type KernelArchitecture } from "./architecture.js";
import { ioctlRequest, type IoctlRequest } from "./ioctl-encoding.js";

/**
 * iommufd's and the VFIO device cdev's numbers and struct layouts (linux/iommufd.h, linux/vfio.h
 * of Linux 7.3; Debian's 6.1 cross headers predate most of them). Checked against the headers of
 * the kernel the Arm tier builds (`make headers_install`) by test/iommufd-uapi.test.ts.
 */

/** The ioctl type of /dev/iommu and of VFIO (';'): every command is `_IO(';', nr)`. */
export const IOMMUFD_TYPE = 0x3b;
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/** IOMMU_HWPT_ALLOC flags (enum iommufd_hwpt_alloc_flags). */
export const HwptAllocFlag = {
  IOMMU_HWPT_ALLOC_NEST_PARENT: 1 << 0,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING: 1 << 1,
  IOMMU_HWPT_FAULT_ID_VALID: 1 << 2,
  IOMMU_HWPT_ALLOC_PASID: 1 << 3,
} as const;

/** IOMMU_IOAS_MAP flags (enum iommufd_ioas_map_flags). */
export const IoasMapFlag = {
  IOMMU_IOAS_MAP_FIXED_IOVA: 1 << 0,
  IOMMU_IOAS_MAP_WRITEABLE: 1 << 1,
  IOMMU_IOAS_MAP_READABLE: 1 << 2,
} as const;

/** Data types of HWPT_ALLOC, GET_HW_INFO, VIOMMU_ALLOC, HWPT_INVALIDATE and VEVENTQ_ALLOC. */
export const IommufdType = {
  IOMMU_HWPT_DATA_NONE: 0,
  IOMMU_HWPT_DATA_ARM_SMMUV3: 2,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3: 2,
  IOMMU_VIOMMU_TYPE_DEFAULT: 0,
  IOMMU_VIOMMU_TYPE_ARM_SMMUV3: 1,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: 1,
  IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: 1,
} as const;

/** vEVENT header flag: events were lost before this point (enum iommu_veventq_flag). */
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

/** Page-fault record flags and permissions, page-response codes. */
export const IommuPageFault = {
  IOMMU_PGFAULT_FLAGS_PASID_VALID: 1 << 0,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE: 1 << 1,
  IOMMU_PGFAULT_PERM_READ: 1 << 0,
  IOMMU_PGFAULT_PERM_WRITE: 1 << 1,
  IOMMU_PGFAULT_PERM_EXEC: 1 << 2,
  IOMMU_PGFAULT_PERM_PRIV: 1 << 3,
  IOMMUFD_PAGE_RESP_SUCCESS: 0,
  IOMMUFD_PAGE_RESP_INVALID: 1,
} as const;

/** VFIO_REGION_INFO flags. */
export const VfioRegionFlag = {
  VFIO_REGION_INFO_FLAG_READ: 1 << 0,
  VFIO_REGION_INFO_FLAG_WRITE: 1 << 1,
  VFIO_REGION_INFO_FLAG_MMAP: 1 << 2,
} as const;

/** Byte offsets and sizes; the same on every 64-bit ABI (only __u32 and __aligned_u64 fields). */
export const IommufdLayouts = {
  iommu_destroy: { size: 8, id: 4 },
  iommu_ioas_alloc: { size: 12, flags: 4, out_ioas_id: 8 },
  iommu_ioas_map: { size: 40, flags: 4, ioas_id: 8, user_va: 16, length: 24, iova: 32 },
  iommu_ioas_unmap: { size: 24, ioas_id: 4, iova: 8, length: 16 },
  iommu_hwpt_alloc: {
    size: 48,
    flags: 4,
    dev_id: 8,
    pt_id: 12,
    out_hwpt_id: 16,
    data_type: 24,
    data_len: 28,
    data_uptr: 32,
    fault_id: 40,
  },
  iommu_hwpt_arm_smmuv3: { size: 16, ste: 0 },
  iommu_hw_info: {
    size: 40,
    flags: 4,
    dev_id: 8,
    data_len: 12,
    data_uptr: 16,
    out_data_type: 24,
    out_max_pasid_log2: 28,
    out_capabilities: 32,
  },
  iommu_hw_info_arm_smmuv3: { size: 40, flags: 0, idr: 8, iidr: 32, aidr: 36 },
  iommu_hwpt_invalidate: { size: 32, hwpt_id: 4, data_uptr: 8, data_type: 16, entry_len: 20, entry_num: 24 },
  iommu_viommu_arm_smmuv3_invalidate: { size: 16, cmd: 0 },
  iommu_viommu_alloc: {
    size: 40,
    flags: 4,
    type: 8,
    dev_id: 12,
    hwpt_id: 16,
    out_viommu_id: 20,
    data_len: 24,
    data_uptr: 32,
  },
  iommu_vdevice_alloc: { size: 24, viommu_id: 4, dev_id: 8, out_vdevice_id: 12, virt_id: 16 },
  iommu_veventq_alloc: {
    size: 32,
    flags: 4,
    viommu_id: 8,
    type: 12,
    veventq_depth: 16,
    out_veventq_id: 20,
    out_veventq_fd: 24,
  },
  iommufd_vevent_header: { size: 8, flags: 0, sequence: 4 },
  iommu_vevent_arm_smmuv3: { size: 32, evt: 0 },
  iommu_fault_alloc: { size: 16, flags: 4, out_fault_id: 8, out_fault_fd: 12 },
  iommu_hwpt_pgfault: {
    size: 40,
    flags: 0,
    dev_id: 4,
    pasid: 8,
    grpid: 12,
    perm: 16,
    addr: 24,
    length: 32,
    cookie: 36,
  },
  iommu_hwpt_page_response: { size: 8, cookie: 0, code: 4 },
  vfio_device_bind_iommufd: { size: 24, argsz: 0, flags: 4, iommufd: 8, out_devid: 12, token_uuid_ptr: 16 },
  vfio_device_attach_iommufd_pt: { size: 16, argsz: 0, flags: 4, pt_id: 8, pasid: 12 },
  vfio_device_detach_iommufd_pt: { size: 12, argsz: 0, flags: 4, pasid: 8 },
  vfio_region_info: { size: 32, argsz: 0, flags: 4, index: 8, cap_offset: 12, offset: 24 },
} as const;

/** Offset of vfio_region_info's own `size` field (its key in the layout is the struct's size). */
export const VFIO_REGION_INFO_SIZE_FIELD = 16;

/** The iommufd and VFIO cdev ioctls this project issues, numbered for one architecture. */
export function iommufdIoctls(arch: KernelArchitecture) {
  const iommu = (name: string, nr: number): IoctlRequest =>
    ioctlRequest(arch, name, "none", IOMMUFD_TYPE, nr);
  const vfio = (name: string, offset: number): IoctlRequest =>
    ioctlRequest(arch, name, "none", VFIO_TYPE, VFIO_BASE + offset);
  return {
    IOMMU_DESTROY: iommu("IOMMU_DESTROY", 0x80),
    IOMMU_IOAS_ALLOC: iommu("IOMMU_IOAS_ALLOC", 0x81),
    IOMMU_IOAS_MAP: iommu("IOMMU_IOAS_MAP", 0x85),
    IOMMU_IOAS_UNMAP: iommu("IOMMU_IOAS_UNMAP", 0x86),
    IOMMU_HWPT_ALLOC: iommu("IOMMU_HWPT_ALLOC", 0x89),
    IOMMU_GET_HW_INFO: iommu("IOMMU_GET_HW_INFO", 0x8a),
    IOMMU_HWPT_INVALIDATE: iommu("IOMMU_HWPT_INVALIDATE", 0x8d),
    IOMMU_FAULT_QUEUE_ALLOC: iommu("IOMMU_FAULT_QUEUE_ALLOC", 0x8e),
    IOMMU_VIOMMU_ALLOC: iommu("IOMMU_VIOMMU_ALLOC", 0x90),
    IOMMU_VDEVICE_ALLOC: iommu("IOMMU_VDEVICE_ALLOC", 0x91),
    IOMMU_VEVENTQ_ALLOC: iommu("IOMMU_VEVENTQ_ALLOC", 0x93),
    VFIO_DEVICE_GET_REGION_INFO: vfio("VFIO_DEVICE_GET_REGION_INFO", 8),
    VFIO_DEVICE_RESET: vfio("VFIO_DEVICE_RESET", 11),
    VFIO_DEVICE_BIND_IOMMUFD: vfio("VFIO_DEVICE_BIND_IOMMUFD", 18),
    VFIO_DEVICE_ATTACH_IOMMUFD_PT: vfio("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 19),
    VFIO_DEVICE_DETACH_IOMMUFD_PT: vfio("VFIO_DEVICE_DETACH_IOMMUFD_PT", 20),
  } as const;
}

export type IommufdIoctls = ReturnType<typeof iommufdIoctls>;

let hostNumbered: IommufdIoctls | undefined;

/** The ioctl numbers for this host (iommufd's and VFIO's are `_IO`: the same on x86_64 and arm64). */
export function hostIommufdIoctls(): IommufdIoctls {
  hostNumbered ??= iommufdIoctls(hostArchitecture() ?? "arm64");
  return hostNumbered;
}
