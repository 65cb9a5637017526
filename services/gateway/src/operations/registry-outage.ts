import { StoreUnavailableError } from "@vplane/store";
import { electionPause } from "../registry/unanswered-pause.js";

/**
 * How long a running operation waits for a registry that does not answer before it gives a step
 * up (failed UNAVAILABLE, its devices rolled back). After an etcd leader's loss, a call a
 * follower had forwarded to it waits out its deadline (5 s by default), the election takes a
 * second or two more, and a loaded machine stretches both: the ~3 s a request waits (ELECTION_RETRIES)
 * left creates FAILED in the fleet bench's member kill, which no retry of the client completes.
 */
export const REGISTRY_OUTAGE_MS = 20_000;

/** The pauses between tries of one registry call left unanswered, for up to `limitMs` from the first. */
export class OutageWait {
  private attempt = 0;
  private since: number | undefined;

  constructor(private readonly limitMs: number) {}

  /** Waits before the next try (electionPause); false, without waiting, once the limit passed. */
  async next(): Promise<boolean> {
    this.since ??= performance.now();
    if (performance.now() - this.since >= this.limitMs) return false;
    await electionPause(this.attempt++);
    return true;
  }
}

/**
 * Runs `call`, again after a pause each time it fails as unavailable, for up to `limitMs`: for a
 * call that is safe to repeat (a read, or a read-modify-write that reads again first, so that one
 * that applied before its answer was lost is not applied twice).
 */
export async function outlastingOutage<T>(call: () => Promise<T>, limitMs: number): Promise<T> {
  const wait = new OutageWait(limitMs);
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || !(await wait.next())) throw error;
    }
  }
}
