// Keys are printable ASCII without spaces ('!' to '~'), at most MAX_KEY_LENGTH long, e.g.
// "vms/tenant-a/vm-1". Restricting the alphabet makes byte order, string order and SQLite's
// BINARY collation agree, and lets a prefix's range end be computed on characters.

import { StoreInvalidArgumentError } from "./store-error.js";
import { MAX_KEY_LENGTH } from "./store-limits.js";

const KEY_PATTERN = /^[\x21-\x7e]*$/;

export function validateKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) {
    throw new StoreInvalidArgumentError("key must be a non-empty string");
  }
  validateKeyCharacters(key, "key");
}

/** A prefix follows the key rules, but may be empty (everything). */
export function validatePrefix(prefix: string): void {
  if (typeof prefix !== "string") throw new StoreInvalidArgumentError("prefix must be a string");
  validateKeyCharacters(prefix, "prefix");
}

function validateKeyCharacters(text: string, what: string): void {
  if (text.length > MAX_KEY_LENGTH) {
    throw new StoreInvalidArgumentError(
      `${what} is ${text.length} characters long, more than ${MAX_KEY_LENGTH}`,
    );
  }
  if (!KEY_PATTERN.test(text)) {
    throw new StoreInvalidArgumentError(
      `${what} ${JSON.stringify(text)} has a character outside printable ASCII ('!' to '~')`,
    );
  }
}

/**
 * The smallest string greater than every string that starts with `prefix`, or undefined when
 * there is none (the prefix is empty or all '~'). Same rule as etcd's prefix range_end.
 */
export function prefixRangeEnd(prefix: string): string | undefined {
  let end = prefix;
  while (end.length > 0 && end.endsWith("~")) end = end.slice(0, -1);
  if (end.length === 0) return undefined;
  return end.slice(0, -1) + String.fromCharCode(end.charCodeAt(end.length - 1) + 1);
}
