import type { BackendKind, BackendOpening, ControllerBackend } from "./controller-backend.js";
import type { ControllerRecord } from "./controller-config-store.js";
import { openEmulatedBackend } from "./emulated-backend.js";
import { openNativeBackend } from "./native-service-backend.js";

/**
 * How each backend opens. This file is the only one that may import a concrete backend module
 * (`emulated-*backend.ts`, `native-*backend.ts`; eslint.config.js enforces it): adding a backend
 * is implementing ControllerBackend and adding its line here.
 */
const OPENERS: Record<BackendKind, (record: ControllerRecord, opening: BackendOpening) => ControllerBackend> =
  {
    EMULATED: openEmulatedBackend,
    NATIVE: openNativeBackend,
  };

/**
 * Opens the backend the record names: a new controller as the record describes it, or, with
 * `opening.imported`, the one an exported state describes (quiesced until resume). Errors are
 * the backend's: INVALID_ARGUMENT / FAILED_PRECONDITION with the reason it cannot open.
 */
export function openBackend(record: ControllerRecord, opening: BackendOpening): ControllerBackend {
  return OPENERS[record.backend](record, opening);
}
