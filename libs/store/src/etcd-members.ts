// Which member of the cluster an EtcdStore's calls go to: the leader, as far as it is known.
//
// Every member answers every call (a follower forwards a write to the leader and asks it for a
// linearizable read's index), but calls spread over the members cost the cluster more: measured on
// a 3-member cluster on loopback, 8 calls in flight from one client, etcd spent 0.34-0.38 ms of
// CPU per Range sent to the leader and 0.65-0.79 per Range spread at random, 1.10-1.35 ms per Txn
// to the leader and 1.38-1.85 spread (its batching: one read index, one raft append for the calls
// that arrive together). The etcd3 client picked a random member for each call; here there is
// one client per member (etcd-member-client.ts) and this class picks: the leader, found from the
// members' Status (each names itself and the leader), checked again every RECHECK_MS.
//
// When a call fails as unavailable, the members are asked for their status every POLL_MS until one
// names itself leader (bounded by a call's deadline), and the failed call and every call made
// meanwhile wait for that answer. Sending them on to a follower instead is what made a leader's
// death cost a whole call deadline: a follower that has not yet noticed forwards a write to the
// dead leader, and nothing ever answers it (etcd does not propose it again after the election).
import { connectEtcdMember, isRecoverable, type EtcdMemberClient } from "./etcd-member-client.js";

/** Tries of one call; a try after a failure goes to the leader the members name then. */
const MAX_ATTEMPTS = 3;
const RECHECK_MS = 5_000;
const POLL_MS = 20;
const STATUS_TIMEOUT_MS = 250;

export class EtcdMembers {
  /** The member tried first: the leader when the last look found it. */
  private preferred = 0;
  private nextCheckAt = 0;
  private checking = false;
  /** The search for a leader after a failed call; calls wait for it before they are sent. */
  private search: Promise<boolean> | undefined;
  private closed = false;

  /** `clients[i]` talks to member i only; each try of a call gets `callTimeoutMs`. */
  constructor(
    private readonly clients: readonly EtcdMemberClient[],
    private readonly callTimeoutMs: number,
  ) {}

  /** A client per endpoint. */
  static connect(endpoints: readonly string[], callTimeoutMs: number): EtcdMembers {
    return new EtcdMembers(endpoints.map(connectEtcdMember), callTimeoutMs);
  }

  /**
   * Runs `call` on the leader's client with a deadline. When the call fails as unavailable (a
   * recoverable error), it is tried again, up to MAX_ATTEMPTS tries, on the member that names
   * itself leader once one does (or, when none does within a call's deadline, on another member).
   * Each try has a deadline of its own, and the wait for a leader counts against it. A conditional
   * write whose first try applied but whose answer was lost then reports a conflict (see
   * EtcdStore).
   */
  async run<T>(call: (client: EtcdMemberClient, deadline: number) => Promise<T>): Promise<T> {
    if (Date.now() >= this.nextCheckAt) this.check();
    let member = this.preferred;
    let lastError: unknown;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const deadline = Date.now() + this.callTimeoutMs;
      if (attempt > 0) member = await this.afterFailure(member);
      else if (this.search) {
        await this.search;
        member = this.preferred;
      }
      try {
        return await call(this.clients[member]!, deadline);
      } catch (error) {
        if (!isRecoverable(error)) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients) client.close();
  }

  /** The member to try after `failed` failed a call: the leader once one is found, else the next. */
  private async afterFailure(failed: number): Promise<number> {
    if (this.clients.length === 1) return failed;
    this.search ??= this.searchLeader().finally(() => (this.search = undefined));
    return (await this.search) ? this.preferred : (failed + 1) % this.clients.length;
  }

  /**
   * Asks every member for its status every POLL_MS until one names itself leader, for at most a
   * call's deadline; true when one did (it is then the preferred member).
   */
  private async searchLeader(): Promise<boolean> {
    const until = Date.now() + this.callTimeoutMs;
    while (!this.closed) {
      if (await this.lookForLeader(Math.min(until, Date.now() + STATUS_TIMEOUT_MS))) return true;
      if (Date.now() + POLL_MS >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    return false;
  }

  /** The periodic look, in the background (a failed call's search, when one runs, decides). */
  private check(): void {
    if (this.checking || this.search || this.clients.length === 1) return;
    this.checking = true;
    this.nextCheckAt = Date.now() + RECHECK_MS;
    void this.statusRound(Date.now() + STATUS_TIMEOUT_MS).then((round) => {
      this.checking = false;
      if (!this.search) this.prefer(round);
    });
  }

  private async lookForLeader(deadline: number): Promise<boolean> {
    const round = await this.statusRound(deadline);
    this.prefer(round);
    return round.leader >= 0;
  }

  /** Asks every member for its status: which one names itself leader, which answered first. */
  private async statusRound(deadline: number): Promise<{ leader: number; answered: number }> {
    const answers = await Promise.all(
      this.clients.map((client) => client.status(deadline).catch(() => undefined)),
    );
    const leader = answers.findIndex(
      (status) =>
        status?.leader !== undefined && status.leader !== "0" && status.header.member_id === status.leader,
    );
    return { leader, answered: answers.findIndex((status) => status !== undefined) };
  }

  /** The leader, or with none (an election) the first member that answered, if any. */
  private prefer({ leader, answered }: { leader: number; answered: number }): void {
    if (leader >= 0) this.preferred = leader;
    else if (answered >= 0) this.preferred = answered;
  }
}
