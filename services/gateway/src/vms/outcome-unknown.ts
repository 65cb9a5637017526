import { toVplaneError } from "@vplane/service-kit";

/**
 * Answers after which the caller cannot tell whether the host's service applied the call (its
 * answer was lost, not a refusal): the service killed mid-call (UNAVAILABLE, INTERNAL), the
 * deadline passed.
 */
const OUTCOME_UNKNOWN = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "INTERNAL"]);

export function outcomeUnknown(error: unknown): boolean {
  return OUTCOME_UNKNOWN.has(toVplaneError(error).code);
}
