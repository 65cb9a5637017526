import { VplaneError } from "@vplane/service-kit";
import { probeNativeSmmu } from "./native-probe.js";

/**
 * Until the service opens native SMMUs (fds handed over or opened for it), creating one fails
 * FAILED_PRECONDITION with the host probe's reason, so a caller learns why this host cannot.
 */
export function refuseNativeBackend(): never {
  const probe = probeNativeSmmu();
  throw new VplaneError({
    code: "FAILED_PRECONDITION",
    reason: probe.unavailableCode || "NATIVE_BACKEND_UNAVAILABLE",
    message: `the native SMMU backend is unavailable on this host: ${probe.unavailableReason}`,
    field: "smmu.backend",
  });
}
