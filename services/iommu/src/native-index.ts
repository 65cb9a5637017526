// What the native backend offers beyond the service: the Arm kernel tier's guest runs it directly,
// beside the emulated backend it is compared with, and runs the service's own handlers on it.
export { EmulatedSmmuBackend } from "./emulated-smmu-backend.js";
export { NativeSmmuBackend, type NativeSmmuOptions } from "./native-smmu-backend.js";
export { NativeSetupError, NativeSmmuObjects, type NativeSmmuFds } from "./native-smmu-objects.js";
export type { SmmuBackend } from "./smmu-backend.js";
export { probeNativeSmmu, type NativeSmmuHost } from "./native-probe.js";
export { hostVfioDevices, type HostVfioDevice } from "./native-vfio-devices.js";
export { SmmuHandoffServer, type HandedOverSmmu } from "./native-vmm-handoff.js";
export { SmmuRegistry, type SmmuEntry } from "./smmu-registry.js";
export { smmuCrudHandlers } from "./smmu-crud-handlers.js";
export { smmuConfigHandlers } from "./smmu-config-handlers.js";
export { smmuDataHandlers } from "./smmu-data-handlers.js";
export { smmuVmDevices } from "./smmu-vm-devices.js";
export { IommuMetrics } from "./iommu-metrics.js";
