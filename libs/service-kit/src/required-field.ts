import { VplaneError } from "./vplane-error.js";

/**
 * INVALID_ARGUMENT `<FIELD>_MISSING` ("<what> is required", the field named): a request left
 * unset a message field the call cannot go without (proto3 message fields are optional on the
 * wire, so every handler checks its own).
 */
export function missingField(field: string, what: string = field): VplaneError {
  return new VplaneError({
    code: "INVALID_ARGUMENT",
    reason: `${field.toUpperCase()}_MISSING`,
    message: `${what} is required`,
    field,
  });
}

/** `value`, or missingField(`field`) when the request left it unset. */
export function requiredField<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw missingField(field);
  return value;
}
