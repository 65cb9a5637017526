// What the native backend offers beyond the service (the kernel tier's guest runs it directly).
export { KvmVm, hostKvmIoctls } from "./native-kvm-vm.js";
export { KvmXiveDevice } from "./native-kvm-xive-device.js";
export { probeNativeXive, thisHost, type NativeXiveHost } from "./native-probe.js";
export { NativeBackend, type NativeGuestRam } from "./native-backend.js";
export { openContractBackend, type ContractBackendKind } from "./native-contract-backends.js";
export type { ControllerBackend, ControllerSpec } from "./controller-backend.js";
export { VmmHandoffServer, type AdoptedVm } from "./native-vmm-handoff.js";
