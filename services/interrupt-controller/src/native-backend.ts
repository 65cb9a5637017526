import { VplaneError } from "@vplane/service-kit";
import type { ControllerBackend } from "./controller-backend.js";
import { probeNativeXive, type HostFacts, thisHost } from "./native-probe.js";

/**
 * The native backend (the kernel's KVM XIVE device). The ioctl layer is a later issue: on every
 * host the probe reports why the device cannot be used, and creating a NATIVE controller fails
 * with FAILED_PRECONDITION carrying that reason.
 */
export function openNativeBackend(host: HostFacts = thisHost): ControllerBackend {
  const probe = probeNativeXive(host);
  throw new VplaneError({
    code: "FAILED_PRECONDITION",
    reason: probe.unavailableCode || "NATIVE_BACKEND_UNAVAILABLE",
    message: `the native backend is not available on this host: ${probe.unavailableReason}`,
    field: "controller.backend",
  });
}
