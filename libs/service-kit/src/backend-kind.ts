import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { VplaneError } from "./vplane-error.js";

/** The backend a request asks for (vplane.common.v1.Backend): unspecified is EMULATED. */
export function backendKindOf(backend: Backend, field: string): "EMULATED" | "NATIVE" {
  if (backend === Backend.BACKEND_UNSPECIFIED || backend === Backend.BACKEND_EMULATED) return "EMULATED";
  if (backend === Backend.BACKEND_NATIVE) return "NATIVE";
  throw new VplaneError({
    code: "INVALID_ARGUMENT",
    reason: "BACKEND_INVALID",
    message: `unknown backend ${backend}`,
    field,
  });
}
