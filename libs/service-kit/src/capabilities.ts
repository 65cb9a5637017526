import {
  Backend,
  type BackendAvailability,
  type Capabilities,
} from "@vplane/proto/gen/vplane/common/v1/backend";
import { VPLANE_VERSION } from "./version.js";

/**
 * A service's capabilities: the emulated backend is vplane's own model and is always available;
 * the native one is whatever the host probe found, with its reason when not available.
 */
export function buildCapabilities(options: {
  service: string;
  native: BackendAvailability;
  limits?: Record<string, bigint>;
}): Capabilities {
  return {
    service: options.service,
    version: VPLANE_VERSION,
    backends: [
      { backend: Backend.BACKEND_EMULATED, available: true, unavailableReason: "", unavailableCode: "" },
      options.native,
    ],
    limits: options.limits ?? {},
  };
}
