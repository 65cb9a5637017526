import { setTimeout as sleep } from "node:timers/promises";

/**
 * Waits before asking a registry (or a host) that did not answer again: `firstMs` doubling with
 * each attempt, at most `maxMs`. Growing, not jittered (unlike conflictBackoff): the wait is for the registry to
 * come back (an etcd election lasts a second or two), not for other writers to spread out.
 */
export function unansweredPause(
  attempt: number,
  firstMs: number,
  maxMs: number,
  /** False: the pause does not keep the process alive (a follow-up nothing waits for). */
  ref = true,
): Promise<void> {
  return sleep(Math.min(maxMs, firstMs * 2 ** attempt), undefined, { ref });
}

/**
 * How many times a registry call left unanswered is asked again while an etcd election may be
 * under way, each after electionPause(attempt): 100 ms doubling to 1.6 s, ~3 s in all (an election
 * after a member's loss lasts a second or two; a request whose write may have applied should
 * outlast it). A running operation's steps wait longer (REGISTRY_OUTAGE_MS, operations/registry-outage.ts).
 */
export const ELECTION_RETRIES = 5;

export function electionPause(attempt: number): Promise<void> {
  return unansweredPause(attempt, 100, 1_600);
}
