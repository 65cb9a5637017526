// List page tokens: opaque to callers, they carry the prefix they were issued for and the last key
// returned, so the next page starts strictly after it. The prefix check turns a token reused with
// another prefix into an error instead of a silently wrong page.

import { StoreInvalidArgumentError } from "./store-error.js";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./store-limits.js";
import type { ListOptions } from "./store.js";

export function encodePageToken(prefix: string, lastKey: string): string {
  return Buffer.from(JSON.stringify({ p: prefix, k: lastKey }), "utf8").toString("base64url");
}

/** The last key of the previous page, or undefined for the first page. */
export function decodePageToken(prefix: string, token: string | undefined): string | undefined {
  if (token === undefined || token === "") return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    decoded = undefined;
  }
  if (typeof decoded !== "object" || decoded === null) {
    throw new StoreInvalidArgumentError("page token is malformed");
  }
  const { p, k } = decoded as { p?: unknown; k?: unknown };
  if (typeof p !== "string" || typeof k !== "string") {
    throw new StoreInvalidArgumentError("page token is malformed");
  }
  if (p !== prefix) throw new StoreInvalidArgumentError("page token was issued for another prefix");
  return k;
}

export function resolvePageSize(options: ListOptions | undefined): number {
  const size = options?.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
    throw new StoreInvalidArgumentError(
      `pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${size}`,
    );
  }
  return size;
}
