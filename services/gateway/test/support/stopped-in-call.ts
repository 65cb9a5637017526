import { VplaneError } from "@vplane/service-kit";
import type { HostConnections } from "../../src/hosts/host-clients.js";

/** A replica stopped inside one host call (see stopInCall). */
export interface StoppedInCall {
  /** The host call was made: the replica is stopped in it from now on. */
  readonly called: boolean;
  /** The host's answer to it (when it reached the host), which the replica never got. */
  readonly answer: unknown;
  /** Lets the replica go on (its calls as before): it gets the answer, or UNAVAILABLE. */
  resume(): void;
}

/**
 * Makes the gateway replica of `connections` stop inside its next call of `method`, as a kill -9
 * would: with `reached`, the call reaches the host and is applied, but its answer is held; else
 * the call never leaves. The replica's work waits there until `resume` (the test's cleanup), so
 * whatever it would have recorded after the call is not recorded.
 */
export function stopInCall(connections: HostConnections, method: string, reached: boolean): StoppedInCall {
  const real = connections.call.bind(connections);
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const state = {
    called: false,
    answer: undefined as unknown,
    resume: () => {
      delete (connections as Partial<HostConnections>).call; // the prototype's again
      release();
    },
  };
  connections.call = async (service, called, invoke, options) => {
    if (called !== method || state.called) return real(service, called, invoke, options);
    state.called = true;
    if (!reached) {
      await gate;
      throw new VplaneError({ code: "UNAVAILABLE", reason: "TEST_STOPPED", message: `${method} never sent` });
    }
    const answer = await real(service, called, invoke, options);
    state.answer = answer;
    await gate;
    return answer;
  };
  return state;
}

/** Waits until `stopped`'s call was made (and, when it reached the host, answered there). */
export async function untilStopped(
  stopped: StoppedInCall,
  reached: boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(stopped.called && (!reached || stopped.answer !== undefined))) {
    if (performance.now() > deadline) throw new Error("the call the replica was to stop in never came");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A host call whose answer was lost once (see loseAnswerOnce). */
export interface LostAnswer {
  /** The host's answer to the call, which the replica got as UNAVAILABLE instead. */
  readonly answer: unknown;
  /** The replica's calls as before. */
  restore(): void;
}

/**
 * Makes the next call of `method` by the replica of `connections` reach the host and be applied
 * there, but answer the replica UNAVAILABLE, as a connection reset after the host's work would;
 * later calls go through as before.
 */
export function loseAnswerOnce(connections: HostConnections, method: string): LostAnswer {
  const real = connections.call.bind(connections);
  const state = {
    answer: undefined as unknown,
    restore: () => {
      delete (connections as Partial<HostConnections>).call; // the prototype's again
    },
  };
  connections.call = async (service, called, invoke, options) => {
    if (called !== method || state.answer !== undefined) return real(service, called, invoke, options);
    state.answer = await real(service, called, invoke, options);
    throw new VplaneError({
      code: "UNAVAILABLE",
      reason: "TEST_ANSWER_LOST",
      message: `${method}'s answer lost`,
    });
  };
  return state;
}
