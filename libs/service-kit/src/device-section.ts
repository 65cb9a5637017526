import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { toVplaneError, VplaneError } from "./vplane-error.js";

/** A device's exported state as the section that carries it (payload shared, not copied). */
export function deviceSection(
  device: string,
  { kind, formatVersion, payload }: { kind: string; formatVersion: number; payload: Uint8Array },
): DeviceSection {
  return {
    kind,
    device,
    formatVersion,
    payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
  };
}

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
 * A device state its reader refused, INVALID_ARGUMENT with `field` relative to the state's
 * section ("kind", "format_version", "payload.<field>"). The reader (a backend's state format)
 * does not know which section it reads; the DeviceStateService handler names it (inSection).
 */
export class StateRefused extends VplaneError {}

export function refuseState(reason: string, message: string, field: string): StateRefused {
  return new StateRefused({ code: "INVALID_ARGUMENT", reason, message, field });
}

/** Runs `read` on sections[index]: a StateRefused becomes the refusal of that section. */
export function inSection<T>(index: number, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof StateRefused)) throw error;
    throw badSection(index, error.reason, error.message, error.field);
  }
}

/**
 * Decodes a state's payload once its format version is `version` (else STATE_VERSION_UNSUPPORTED
 * on "format_version"); a payload `decode` refuses keeps its reason, on "payload.<field>". A state
 * accepted before (a restart reading it back) comes without its section's version: its payload
 * still carries one, which `decode` checks.
 */
export function decodeState<T>(
  state: { formatVersion?: number; payload: Uint8Array },
  version: number,
  decode: (payload: Uint8Array) => T,
): T {
  if (state.formatVersion !== undefined && state.formatVersion !== version) {
    throw refuseState(
      "STATE_VERSION_UNSUPPORTED",
      `format version ${state.formatVersion} is not supported (this service reads ${version})`,
      "format_version",
    );
  }
  return refusedAsPayload(() => decode(state.payload));
}

/** Runs `read` on a state's payload: what it throws becomes a StateRefused on "payload.<field>". */
export function refusedAsPayload<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    const e = toVplaneError(error);
    throw refuseState(e.reason, e.message, e.field ? `payload.${e.field}` : "payload");
  }
}
