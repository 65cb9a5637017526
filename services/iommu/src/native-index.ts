// What the native backend offers beyond the service: the Arm kernel tier's guest runs it directly,
// beside the emulated backend it is compared with.
export { EmulatedSmmuBackend } from "./emulated-smmu-backend.js";
export { NativeSmmuBackend, type NativeSmmuOptions } from "./native-smmu-backend.js";
export { NativeSetupError, NativeSmmuObjects, type NativeSmmuFds } from "./native-smmu-objects.js";
export type { SmmuBackend } from "./smmu-backend.js";
export { probeNativeSmmu, type NativeSmmuHost } from "./native-probe.js";
