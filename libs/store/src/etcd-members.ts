// Which member of the cluster an EtcdStore's calls go to: the leader, as far as it is known.
//
// Every member answers every call (a follower forwards a write to the leader and asks it for a
// linearizable read's index), but calls spread over the members cost the cluster more: measured on
// a 3-member cluster on loopback, 8 calls in flight from one client, etcd spent 0.34-0.38 ms of
// CPU per Range sent to the leader and 0.65-0.79 per Range spread at random, 1.10-1.35 ms per Txn
// to the leader and 1.38-1.85 spread (its batching: one read index, one raft append for the calls
// that arrive together). The etcd3 client picked a random member for each call; here there is
// one client per member (etcd-member-client.ts) and this class picks: the leader, found from the members' Status (each
// names itself and the leader), checked again every RECHECK_MS, and after a member failed a call
// or no leader was found (an election) once SOON_MS passed.
// A leader that changed meanwhile costs only speed: its successor's followers answer too.
import { connectEtcdMember, isRecoverable, type EtcdMemberClient } from "./etcd-member-client.js";

/** Tries of one call, each on the next member (a single-member store tries the same one again). */
const MAX_ATTEMPTS = 3;
const RECHECK_MS = 5_000;
const SOON_MS = 500;
const STATUS_TIMEOUT_MS = 1_000;

export class EtcdMembers {
  /** The member tried first: the leader when the last check found it. */
  private preferred = 0;
  private nextCheckAt = 0;
  private lastCheckAt = -Infinity;
  private checking = false;

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
   * Runs `call` on the preferred member's client with a deadline; when that member fails it as
   * unavailable (a recoverable error), on the next member, up to MAX_ATTEMPTS tries, each with a
   * deadline of its own. A conditional write whose first try applied but whose answer was lost
   * then reports a conflict (see EtcdStore).
   */
  async run<T>(call: (client: EtcdMemberClient, deadline: number) => Promise<T>): Promise<T> {
    if (Date.now() >= this.nextCheckAt) this.findLeader();
    let lastError: unknown;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const client = this.clients[(this.preferred + attempt) % this.clients.length]!;
      try {
        return await call(client, Date.now() + this.callTimeoutMs);
      } catch (error) {
        if (!isRecoverable(error)) throw error;
        lastError = error;
        if (Date.now() - this.lastCheckAt >= SOON_MS) this.findLeader();
      }
    }
    throw lastError;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }

  /** Asks every member for its status in the background; the one that names itself leader wins. */
  private findLeader(): void {
    if (this.checking || this.clients.length === 1) return;
    this.checking = true;
    this.lastCheckAt = Date.now();
    this.nextCheckAt = this.lastCheckAt + RECHECK_MS;
    const statuses = this.clients.map((client) =>
      client.status(Date.now() + STATUS_TIMEOUT_MS).catch(() => undefined),
    );
    void Promise.all(statuses).then((answers) => {
      this.checking = false;
      const leader = answers.findIndex(
        (status) =>
          status?.leader !== undefined && status.leader !== "0" && status.header.member_id === status.leader,
      );
      // No leader known (an election): the first member that answered, and look again soon.
      const answered = answers.findIndex((status) => status !== undefined);
      if (leader >= 0) this.preferred = leader;
      else {
        if (answered >= 0) this.preferred = answered;
        this.nextCheckAt = this.lastCheckAt + SOON_MS;
      }
    });
  }
}
