import { VplaneError } from "./vplane-error.js";

/** Page size of a List call that names none. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page a List call may ask for. */
export const MAX_PAGE_SIZE = 1000;

/** What a List call asks for (AIP-158). */
export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

/**
 * One page of a List call over a service's resources, ordered by key (AIP-158): page_size 0 is
 * DEFAULT_PAGE_SIZE, above MAX_PAGE_SIZE INVALID_ARGUMENT PAGE_SIZE_TOO_LARGE; the next page's
 * token is the last key of this one, which `issued` must accept back (INVALID_ARGUMENT
 * PAGE_TOKEN_INVALID otherwise). Only the keys under `under` are listed.
 */
export function listPage<T>(
  entries: ReadonlyMap<string, T>,
  request: PageRequest,
  options: { under?: string; issued: (key: string) => boolean },
): { items: T[]; nextPageToken: string } {
  const pageSize = request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize;
  if (pageSize > MAX_PAGE_SIZE) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "PAGE_SIZE_TOO_LARGE",
      message: `page_size is at most ${MAX_PAGE_SIZE}`,
      field: "page_size",
    });
  }
  const under = options.under ?? "";
  let after = "";
  if (request.pageToken !== "") {
    after = Buffer.from(request.pageToken, "base64url").toString("utf8");
    if (!after.startsWith(under) || !options.issued(after)) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "PAGE_TOKEN_INVALID",
        message: "page_token is not one this listing issued",
        field: "page_token",
      });
    }
  }
  const keys = [...entries.keys()].filter((k) => k.startsWith(under) && k > after).sort();
  const shown = keys.slice(0, pageSize);
  const last = shown.at(-1);
  return {
    items: shown.map((k) => entries.get(k)!),
    nextPageToken: keys.length > pageSize && last ? Buffer.from(last, "utf8").toString("base64url") : "",
  };
}
