import { toVplaneError, VplaneError } from "./vplane-error.js";

/** A refused section of ImportDeviceState: INVALID_ARGUMENT naming sections[index] (and `field`). */
export function badSection(index: number, reason: string, message: string, field?: string): VplaneError {
  return new VplaneError({
    code: "INVALID_ARGUMENT",
    reason,
    message: `sections[${index}]: ${message}`,
    field: field ? `sections[${index}].${field}` : `sections[${index}]`,
  });
}

/**
 * Decodes sections[index]'s payload once its format version is the one this service reads
 * (else STATE_VERSION_UNSUPPORTED); a payload `decode` refuses keeps its reason, with the field
 * under sections[index].payload.
 */
export function decodeSection<T>(
  section: { formatVersion: number; payload: Uint8Array },
  index: number,
  version: number,
  decode: (payload: Uint8Array) => T,
): T {
  if (section.formatVersion !== version) {
    throw badSection(
      index,
      "STATE_VERSION_UNSUPPORTED",
      `format version ${section.formatVersion} is not supported (this service reads ${version})`,
      "format_version",
    );
  }
  try {
    return decode(section.payload);
  } catch (error) {
    const e = toVplaneError(error);
    throw badSection(index, e.reason, e.message, e.field ? `payload.${e.field}` : "payload");
  }
}
