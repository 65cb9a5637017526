import { Backend, type Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { BackendChoice, RequestedBackend } from "../schemas/vm-schema.js";

/**
 * The backend a VM's device gets on a host. `auto` takes native when the host's service says it
 * can (GetCapabilities), else emulated, and says why; an explicit choice is passed through and
 * the service refuses it (FAILED_PRECONDITION) if it cannot honour it.
 */
export function chooseBackend(
  requested: RequestedBackend,
  service: string,
  capabilities: Capabilities | undefined,
): BackendChoice {
  if (requested !== "auto") return { backend: requested, reason: `${requested} requested` };
  if (!capabilities) {
    return {
      backend: "emulated",
      reason: `${service} did not report capabilities; emulated is always offered`,
    };
  }
  const native = capabilities.backends.find((b) => b.backend === Backend.BACKEND_NATIVE);
  if (native?.available)
    return { backend: "native", reason: `${service} offers the native backend on this host` };
  const why = native
    ? `${native.unavailableCode || "UNAVAILABLE"}: ${native.unavailableReason || "no reason given"}`
    : "the service does not list a native backend";
  return { backend: "emulated", reason: `native not available from ${service} (${why})` };
}

export function backendToProto(backend: BackendChoice["backend"]): Backend {
  return backend === "native" ? Backend.BACKEND_NATIVE : Backend.BACKEND_EMULATED;
}
