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
  return (await gather(store, prefix, pageSize, 0)).entries;
}

/**
 * Every entry under `prefix` written after store revision `changedAfter` (0: every entry), as
 * listAll gathers them, and the revision the first page was read at: listing again with that as
 * `changedAfter` finds every write this list did not show.
 */
export function listChanged(
  store: Pick<Store, "list">,
  prefix: string,
  changedAfter: number,
): Promise<{ entries: StoreEntry[]; revision: number }> {
  return gather(store, prefix, MAX_PAGE_SIZE, changedAfter);
}

async function gather(
  store: Pick<Store, "list">,
  prefix: string,
  pageSize: number,
  changedAfter: number,
): Promise<{ entries: StoreEntry[]; revision: number }> {
  const entries: StoreEntry[] = [];
  let pageToken: string | undefined;
  let revision: number | undefined;
  do {
    const page = await store.list(prefix, {
      pageSize,
      ...(changedAfter > 0 ? { changedAfter } : {}),
      ...(pageToken ? { pageToken } : {}),
    });
    entries.push(...page.entries);
    revision ??= page.revision;
    pageToken = page.nextPageToken;
  } while (pageToken !== undefined);
  return { entries, revision };
}
