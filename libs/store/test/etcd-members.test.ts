// EtcdMembers: an EtcdStore's calls go to the member that says it leads; a call a member failed as
// unavailable, and every call made meanwhile, waits until a member names itself leader and goes
// there (when none does within a call's deadline, to another member; 3 tries in all); any other
// failure is the answer.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { EtcdCallError, type EtcdMemberClient } from "../src/etcd-member-client.js";
import { EtcdMembers } from "../src/etcd-members.js";

interface FakeMember {
  id: string;
  /** The leader this member reports; undefined: its Status call fails (member down). */
  leader?: string;
  /** What the next calls on it throw, in turn (then they answer its id). */
  failures: Error[];
  /** Killed: its calls and its Status fail as unavailable. */
  down?: boolean;
  calls: number;
}

const member = (id: string, leader?: string, failures: Error[] = []): FakeMember => ({
  id,
  ...(leader !== undefined ? { leader } : {}),
  failures,
  calls: 0,
});

const unavailable = (message: string) => new EtcdCallError(status.UNAVAILABLE, message);

const clientOf = (m: FakeMember) =>
  ({
    status: () =>
      m.leader === undefined || m.down
        ? Promise.reject(unavailable("down"))
        : Promise.resolve({ leader: m.leader, header: { member_id: m.id } }),
    close: () => {},
  }) as unknown as EtcdMemberClient;

function membersOf(
  fakes: FakeMember[],
  callTimeoutMs = 1000,
): { members: EtcdMembers; call: () => Promise<string> } {
  const clients = fakes.map(clientOf);
  const members = new EtcdMembers(clients, callTimeoutMs);
  const call = () =>
    members.run((client) => {
      const m = fakes[clients.indexOf(client)]!;
      m.calls++;
      const failure = m.down ? unavailable("connection refused") : m.failures.shift();
      return failure ? Promise.reject(failure) : Promise.resolve(m.id);
    });
  return { members, call };
}

/** Lets the background Status check of the first call finish. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("EtcdMembers", () => {
  it("sends calls to the member that names itself leader, once the members' status is in", async () => {
    const fakes = [member("11", "33"), member("22", "33"), member("33", "33")];
    const { call } = membersOf(fakes);
    await call(); // starts the check
    await settle();
    assert.deepEqual(await Promise.all([call(), call(), call()]), ["33", "33", "33"]);
  });

  it("sends a call the leader failed to the member that names itself leader next, not to a follower", async () => {
    // The leader (11) dies; 22 still names it (it has not noticed), and 33 wins the election after
    // a few status rounds. A follower would forward the call to the dead leader, where nothing
    // answers it: the call waits for 33 instead (a deadline no loaded machine runs out).
    const fakes = [member("11", "11"), member("22", "11"), member("33", "11")];
    const { call } = membersOf(fakes, 60_000);
    await call();
    await settle();
    fakes[0]!.down = true;
    let rounds = 0;
    const election = setInterval(() => {
      if (++rounds === 3) for (const m of fakes.slice(1)) m.leader = "33";
    }, 5);
    try {
      const during = [call(), call()];
      assert.deepEqual(await Promise.all(during), ["33", "33"]);
      assert.equal(await call(), "33");
    } finally {
      clearInterval(election);
    }
    assert.deepEqual(
      fakes.map((m) => m.calls),
      [3, 0, 3],
    );
  });

  it("hands a call on to another member when none names itself leader within a call's deadline, 3 tries in all", async () => {
    const refused = () => unavailable("connection refused");
    const fakes = [member("11", "0", [refused()]), member("22", "0", [refused()]), member("33", "0")];
    assert.equal(await membersOf(fakes, 50).call(), "33");
    assert.deepEqual(
      fakes.map((m) => m.calls),
      [1, 1, 1],
    );

    const allDown = [0, 1, 2].map(() => member("44", "0", [refused(), refused(), refused()]));
    await assert.rejects(membersOf(allDown, 50).call(), { code: status.UNAVAILABLE });
  });

  it("tries the leader again when it still names itself leader after failing a call", async () => {
    const fakes = [
      member("11", "11", [new EtcdCallError(status.DEADLINE_EXCEEDED, "slow")]),
      member("22", "11"),
    ];
    assert.equal(await membersOf(fakes).call(), "11");
    assert.deepEqual(
      fakes.map((m) => m.calls),
      [2, 0],
    );
  });

  it("retries a single member's unavailable call on the same member", async () => {
    const fakes = [member("11", "11", [unavailable("reset"), unavailable("reset")])];
    assert.equal(await membersOf(fakes).call(), "11");
    assert.equal(fakes[0]!.calls, 3);
  });

  it("hands on a try whose deadline passed, and gives each try a deadline of its own", async () => {
    const clients = [0, 1].map((i) => clientOf(member(String(i), "1")));
    const members = new EtcdMembers(clients, 1000);
    const deadlines: number[] = [];
    const answer = await members.run((client, deadline) => {
      deadlines.push(deadline - Date.now());
      return deadlines.length === 1
        ? Promise.reject(new EtcdCallError(status.DEADLINE_EXCEEDED, "deadline exceeded"))
        : Promise.resolve(clients.indexOf(client));
    });
    assert.equal(answer, 1);
    assert.equal(deadlines.length, 2);
    for (const left of deadlines) assert.ok(left > 900 && left <= 1000, `${left} ms left`);
  });

  it("answers any other failure at once, untried elsewhere", async () => {
    const badKey = new EtcdCallError(status.INVALID_ARGUMENT, "bad key");
    const fakes = [member("11", "11", [badKey]), member("22", "11")];
    await assert.rejects(membersOf(fakes).call(), badKey);
    assert.deepEqual(
      fakes.map((m) => m.calls),
      [1, 0],
    );
  });

  it("keeps to the members that answer when none names itself leader (an election)", async () => {
    const fakes = [member("11"), member("22", "0"), member("33", "0")];
    const { call } = membersOf(fakes);
    await call();
    await settle();
    assert.equal(await call(), "22");
  });
});
