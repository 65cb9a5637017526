// Limits every backend enforces the same way, so that code tested against SQLite does not start
// failing when it meets etcd.

/** Longest key, in characters (keys are printable ASCII, so also bytes). */
export const MAX_KEY_LENGTH = 512;

/**
 * Largest encoded value, in bytes. etcd refuses requests over --max-request-bytes (default
 * 1.5 MiB); 1 MiB leaves room for the key and the rest of a transaction.
 */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Most ops in one transaction. Equivalent to etcd's --max-txn-ops (default 128). */
export const MAX_TRANSACTION_OPS = 128;

/** Most ops in one SQLite transaction: bulk imports commit (and fsync) once per this many. */
export const MAX_SQLITE_TRANSACTION_OPS = 65_536;

/** Entries in a list page when the caller does not say. */
export const DEFAULT_PAGE_SIZE = 100;

/** Most entries in one list page. */
export const MAX_PAGE_SIZE = 1000;
