import type { VplaneError } from "@vplane/service-kit";
import type { ErrorBody } from "../schemas/error-schema.js";
import { InvalidFieldsError } from "./field-violations.js";

/**
 * A VplaneError as the REST error body; absent details are left out, never sent as null. An
 * error that names a field lists it (or, for a schema rejection, every bad field) as
 * google.rpc.BadRequest field violations.
 */
export function errorBody(error: VplaneError, extra: { step?: string; phase?: string } = {}): ErrorBody {
  const details: ErrorBody["error"]["details"] = {};
  if (error.errno !== undefined) details.errno = error.errno;
  if (error.hcallReturnCode !== undefined) details.hcallReturnCode = error.hcallReturnCode;
  if (error.field !== undefined) {
    details.field = error.field;
    details.fieldViolations =
      error instanceof InvalidFieldsError
        ? [...error.violations]
        : [{ field: error.field, description: error.message, reason: error.reason }];
  }
  if (error.batchIndex !== undefined) details.batchIndex = error.batchIndex;
  if (extra.step !== undefined) details.step = extra.step;
  if (extra.phase !== undefined) details.phase = extra.phase;
  return { error: { code: error.code, reason: error.reason, message: error.message, details } };
}
