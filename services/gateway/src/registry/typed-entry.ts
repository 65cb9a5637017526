import {
  StoreInvalidArgumentError,
  listAll as listEntries,
  type JsonValue,
  type Store,
  type TransactionOp,
} from "@vplane/store";
import { VplaneError } from "@vplane/service-kit";

/** A record read from the store with the revision to compare-and-swap against. */
export interface Versioned<T> {
  value: T;
  revision: number;
}

/** Records are plain JSON objects; this is where their type meets the store's JsonValue. */
export function toJson<T>(value: T): JsonValue {
  return value as unknown as JsonValue;
}

/** How a kind of record is laid out in the store, when not as it is in memory (see stored-operation.ts). */
export interface RecordForm<T> {
  read: (value: unknown) => T;
  write: (record: T) => JsonValue;
}

/** Records stored as they are. */
export const asIs = <T>(): RecordForm<T> => ({ read: (value) => value as T, write: toJson });

export async function readRecord<T>(
  store: Store,
  key: string,
  form: RecordForm<T> = asIs<T>(),
): Promise<Versioned<T> | undefined> {
  const entry = await store.get(key);
  if (!entry) return undefined;
  return { value: form.read(entry.value), revision: entry.revision };
}

export function putOp<T>(key: string, value: T, ifRevision?: number | "absent"): TransactionOp {
  return ifRevision === undefined
    ? { op: "put", key, value: toJson(value) }
    : { op: "put", key, value: toJson(value), ifRevision };
}

/**
 * Writes `value` at `key` if it is still at `revision`, with `along` in the same transaction (a
 * plain conditional put when there is nothing along); the new revision.
 */
export async function putAlong(
  store: Store,
  key: string,
  value: JsonValue,
  revision: number,
  along: TransactionOp[],
): Promise<number> {
  if (along.length === 0) return store.put(key, value, { ifRevision: revision });
  return (await store.transaction([putOp(key, value, revision), ...along])).revision;
}

/** Every record under `prefix`, all pages. */
export async function listAll<T>(store: Store, prefix: string): Promise<Versioned<T>[]> {
  return (await listEntries(store, prefix)).map((entry) => ({
    value: entry.value as unknown as T,
    revision: entry.revision,
  }));
}

/** One AIP-158 page of the records under `prefix`; a page token that is not ours is INVALID_ARGUMENT. */
export async function listPage<T>(
  store: Store,
  prefix: string,
  pageSize: number,
  pageToken?: string,
  form: RecordForm<T> = asIs<T>(),
): Promise<{ items: T[]; nextPageToken?: string | undefined }> {
  try {
    const page = await store.list(prefix, { pageSize, ...(pageToken ? { pageToken } : {}) });
    return {
      items: page.entries.map((entry) => form.read(entry.value)),
      nextPageToken: page.nextPageToken,
    };
  } catch (error) {
    if (error instanceof StoreInvalidArgumentError && pageToken) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "BAD_PAGE_TOKEN",
        message: "pageToken is not a token this list returned",
        field: "pageToken",
      });
    }
    throw error;
  }
}
