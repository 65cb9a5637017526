import { openEmulatedSmmuBackend } from "./emulated-smmu-backend.js";
import { openNativeSmmuBackend } from "./native-service-backend.js";
import type { BackendKind, BackendOpening, SmmuBackend } from "./smmu-backend.js";
import type { SmmuRecord } from "./smmu-config-store.js";

/**
 * How each backend opens. This file is the only one that may import a concrete backend module
 * (`emulated-*backend.ts`, `native-*backend.ts`; eslint.config.js enforces it): adding a backend
 * is implementing SmmuBackend and adding its line here.
 */
const OPENERS: Record<BackendKind, (record: SmmuRecord, opening: BackendOpening) => SmmuBackend> = {
  EMULATED: openEmulatedSmmuBackend,
  NATIVE: openNativeSmmuBackend,
};

/**
 * Opens the backend the record names: a new SMMU as the record describes it, or, with
 * `opening.imported`, the one an exported state describes (quiesced until resume). Errors are
 * the backend's: INVALID_ARGUMENT / FAILED_PRECONDITION with the reason it cannot open; a state
 * it cannot rebuild is StateRefused.
 */
export function openBackend(record: SmmuRecord, opening: BackendOpening): SmmuBackend {
  return OPENERS[record.backend](record, opening);
}
