import { VplaneError } from "@vplane/service-kit";
import type { ControllerBackend } from "./controller-backend.js";
import { probeNativeXive, type NativeXiveHost, thisHost } from "./native-probe.js";

/**
 * The native backend (the kernel's KVM XIVE device). Where the probe says the device is not
 * there, creating a NATIVE controller fails with FAILED_PRECONDITION and the probe's reason;
 * where it is, the backend's device calls are not wired to the service yet: UNIMPLEMENTED.
 */
export function openNativeBackend(host: NativeXiveHost = thisHost): ControllerBackend {
  const probe = probeNativeXive(host);
  if (!probe.available) {
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: probe.unavailableCode || "NATIVE_BACKEND_UNAVAILABLE",
      message: `the native backend is not available on this host: ${probe.unavailableReason}`,
      field: "controller.backend",
    });
  }
  throw new VplaneError({
    code: "UNIMPLEMENTED",
    reason: "NATIVE_BACKEND_NOT_WIRED",
    message: "this host has the KVM XIVE device, but the service does not drive it through gRPC yet",
    field: "controller.backend",
  });
}
