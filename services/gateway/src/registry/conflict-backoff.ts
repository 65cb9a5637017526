/**
 * Waits before retrying a lost compare-and-swap race: random in [0, min(cap, 2^attempt)) ms
 * ("full jitter"), so that many writers of one hot key (a host's usage) spread out instead of
 * colliding again in lock step.
 */
export function conflictBackoff(attempt: number, capMs = 100): Promise<void> {
  const ms = Math.random() * Math.min(capMs, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retries of one compare-and-swap write before the conflict is reported (ABORTED). */
export const MAX_CONFLICT_RETRIES = 60;
