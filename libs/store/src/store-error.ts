// The errors every Store backend throws. Callers branch on the class, never on the message:
// StoreConflictError means "your condition did not hold, read again and decide", StoreUnavailableError
// means "the backend could not be reached or did not answer; the outcome of a write is unknown",
// StoreInvalidArgumentError means "this request can never succeed as written".

import type { ExpectedRevision } from "./store.js";

export class StoreError extends Error {
  override name = "StoreError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A compare-and-swap condition (`ifRevision`) did not hold. Nothing was written.
 * `actual` is the key's revision when the condition was evaluated, or "absent" when the key did
 * not exist. Equivalent to etcd's failed Txn compare, or HTTP 409/412.
 */
export class StoreConflictError extends StoreError {
  override name = "StoreConflictError";
  constructor(
    readonly key: string,
    readonly expected: ExpectedRevision,
    readonly actual: number | "absent",
  ) {
    super(`conflict on '${key}': expected revision ${String(expected)}, found ${String(actual)}`);
  }
}

/**
 * The backend could not be reached or did not answer in time (etcd down, no quorum, deadline
 * passed; SQLite file locked by another writer for longer than the busy timeout). For a write,
 * whether it was applied is unknown: read again, or retry under the same condition.
 */
export class StoreUnavailableError extends StoreError {
  override name = "StoreUnavailableError";
}

/** The request is malformed: a bad key, an oversized value or transaction, a bad page token or URL. */
export class StoreInvalidArgumentError extends StoreError {
  override name = "StoreInvalidArgumentError";
}
