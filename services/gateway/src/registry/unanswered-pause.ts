import { setTimeout as sleep } from "node:timers/promises";

/**
 * Waits before asking a registry that did not answer again: `firstMs` doubling with each attempt,
 * at most `maxMs`. Growing, not jittered (unlike conflictBackoff): the wait is for the registry to
 * come back (an etcd election lasts a second or two), not for other writers to spread out.
 */
export function unansweredPause(attempt: number, firstMs: number, maxMs: number): Promise<void> {
  return sleep(Math.min(maxMs, firstMs * 2 ** attempt));
}
