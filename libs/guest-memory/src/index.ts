export type { GuestMemory } from "./guest-memory.js";
export { GuestMemoryError, type GuestMemoryErrorKind, checkRange } from "./guest-memory-error.js";
export { DirtyPageLog } from "./dirty-page-log.js";
export { DEFAULT_DIRTY_PAGE_SIZE } from "./guest-memory-base.js";
export { SparseGuestMemory } from "./sparse-guest-memory.js";
export { FileGuestMemory } from "./file-guest-memory.js";
