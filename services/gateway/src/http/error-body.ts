import type { VplaneError } from "@vplane/service-kit";
import type { ErrorBody } from "../schemas/error-schema.js";

/** A VplaneError as the REST error body; absent details are left out, never sent as null. */
export function errorBody(error: VplaneError, extra: { step?: string; phase?: string } = {}): ErrorBody {
  const details: ErrorBody["error"]["details"] = {};
  if (error.errno !== undefined) details.errno = error.errno;
  if (error.hcallReturnCode !== undefined) details.hcallReturnCode = error.hcallReturnCode;
  if (error.field !== undefined) details.field = error.field;
  if (error.batchIndex !== undefined) details.batchIndex = error.batchIndex;
  if (extra.step !== undefined) details.step = extra.step;
  if (extra.phase !== undefined) details.phase = extra.phase;
  return { error: { code: error.code, reason: error.reason, message: error.message, details } };
}
