import { VplaneError, toVplaneError } from "@vplane/service-kit";
import { StoreConflictError, StoreError, StoreUnavailableError } from "@vplane/store";

/**
 * A registry failure as the gateway answers it: unreachable is UNAVAILABLE (retry), a lost
 * compare-and-swap race ABORTED, anything else INTERNAL REGISTRY_ERROR.
 */
export function registryError(error: StoreError): VplaneError {
  if (error instanceof StoreUnavailableError) {
    return new VplaneError({
      code: "UNAVAILABLE",
      reason: "REGISTRY_UNAVAILABLE",
      message: "the registry did not answer; retry",
    });
  }
  if (error instanceof StoreConflictError) {
    return new VplaneError({
      code: "ABORTED",
      reason: "CONCURRENT_MODIFICATION",
      message: "the resource changed while this request ran; read it again and retry",
    });
  }
  return new VplaneError({ code: "INTERNAL", reason: "REGISTRY_ERROR", message: "internal registry error" });
}

/** What an operation's work failed with: toVplaneError, with the registry's failures as registryError says. */
export function operationError(error: unknown): VplaneError {
  return error instanceof StoreError ? registryError(error) : toVplaneError(error);
}
