import { MAX_PAGE_SIZE } from "./store-limits.js";
import type { Store, StoreEntry } from "./store.js";

/**
 * Every entry under `prefix`, in key order, gathered page by page (`pageSize` each, the largest
 * page by default). Like each page, the whole is not a snapshot: see Store.list.
 */
export async function listAll(
  store: Pick<Store, "list">,
  prefix: string,
  pageSize = MAX_PAGE_SIZE,
): Promise<StoreEntry[]> {
  const entries: StoreEntry[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.list(prefix, { pageSize, ...(pageToken ? { pageToken } : {}) });
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken !== undefined);
  return entries;
}
