// What the native backend offers beyond the service (the kernel tier's guest runs it directly).
export { KvmVm, hostKvmIoctls } from "./native-kvm-vm.js";
export { KvmXiveDevice } from "./native-kvm-xive-device.js";
export { probeNativeXive, thisHost, type NativeXiveHost } from "./native-probe.js";
