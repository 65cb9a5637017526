export { Errno, type ErrnoName } from "./errno.js";
export { ModelError, type ModelErrorCode, type ModelErrorFields } from "./model-error.js";
export {
  StateReader,
  StateWriter,
  stateError,
  type ModelErrorClass,
  type StateFormat,
} from "./state-bytes.js";
export { addKeyedChange, mergeKeyed, noChanges, sameRecord, type KeyedChanges } from "./keyed-changes.js";
