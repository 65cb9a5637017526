export { KERNEL_ARCHITECTURES, hostArchitecture, type KernelArchitecture } from "./architecture.js";
export { Errno, KernelError, errnoName, isKernelError, type ErrnoName } from "./errno.js";
export { closeFd, openDevice, OpenFlags } from "./file-descriptor.js";
export { watchReadable, type FdWatch } from "./fd-watch.js";
export { ioctl } from "./ioctl.js";
export { ioctlNumber, ioctlRequest, type IoctlDirection, type IoctlRequest } from "./ioctl-encoding.js";
export { kernelCallsAvailability, type KernelCallsAvailability } from "./kernel-calls-availability.js";
export {
  KVM_CREATE_DEVICE_TEST,
  KVM_VM_PPC_HV,
  KVMIO,
  KvmCap,
  KvmDeviceType,
  KvmLayouts,
  KvmReg,
  kvmIoctls,
  type KvmIoctls,
} from "./kvm.js";
export { KVM_REG_PPC_VP_STATE, KvmXive, KvmXiveEqLayout } from "./kvm-ppc-xive.js";
export { KernelCallsUnavailableError, loadLibc } from "./libc.js";
export { MappedRegion, Mmap, hostPageSize, type AccessSize, type ByteOrder } from "./mapped-region.js";
export { NativeBuffer, withNativeBuffer } from "./native-memory.js";
export {
  acceptUnix,
  connectUnix,
  listenUnix,
  MAX_FDS_PER_MESSAGE,
  peerCredentials,
  receiveWithFds,
  sendWithFds,
  socketConstants,
  SocketLayouts,
  type PeerCredentials,
  type ReceivedMessage,
} from "./unix-socket.js";
export {
  HwptAllocFlag,
  IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
  IOMMUFD_TYPE,
  IoasMapFlag,
  IommufdLayouts,
  IommufdType,
  IommuPageFault,
  VFIO_BASE,
  VFIO_REGION_INFO_SIZE_FIELD,
  VFIO_TYPE,
  VfioRegionFlag,
  iommufdIoctls,
  type IommufdIoctls,
} from "./iommufd-uapi.js";
export {
  faultQueueAlloc,
  getHwInfo,
  hwptAlloc,
  hwptInvalidate,
  ioasAlloc,
  ioasMap,
  ioasUnmap,
  iommufdDestroy,
  readPageFaults,
  readVEvents,
  respondPageFault,
  vdeviceAlloc,
  veventqAlloc,
  viommuAlloc,
  type HwInfo,
  type InvalidateResult,
  type PageFault,
  type VEvent,
} from "./iommufd.js";
export { attachIommufdPt, bindIommufd, detachIommufdPt, regionInfo, type VfioRegion } from "./vfio-device.js";
export {
  HandoffRefusal,
  MAX_HANDOFF_MESSAGE,
  requireResourceId,
  requireVersion,
  type HandoffMessage,
} from "./handoff-framing.js";
export {
  HandoffServer,
  ReceivedFds,
  type HandoffConnection,
  type HandoffServerOptions,
  type HandoffSession,
} from "./handoff-server.js";
export { HandoffService, VmmGoneListeners } from "./handoff-service.js";
export { nextHandoffMessage, sendHandoffMessage } from "./handoff-client.js";
