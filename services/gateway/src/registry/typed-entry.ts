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

export async function readRecord<T>(store: Store, key: string): Promise<Versioned<T> | undefined> {
  const entry = await store.get(key);
  if (!entry) return undefined;
  return { value: entry.value as unknown as T, revision: entry.revision };
}

export function putOp<T>(key: string, value: T, ifRevision?: number | "absent"): TransactionOp {
  return ifRevision === undefined
    ? { op: "put", key, value: toJson(value) }
    : { op: "put", key, value: toJson(value), ifRevision };
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
): Promise<{ items: T[]; nextPageToken?: string | undefined }> {
  try {
    const page = await store.list(prefix, { pageSize, ...(pageToken ? { pageToken } : {}) });
    return {
      items: page.entries.map((entry) => entry.value as unknown as T),
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
