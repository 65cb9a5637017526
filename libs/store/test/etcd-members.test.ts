// EtcdMembers: an EtcdStore's calls go to the member that says it leads; a member that fails a call
// as unavailable hands it to the next member (3 tries in all); any other failure is the answer.
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
      m.leader === undefined
        ? Promise.reject(unavailable("down"))
        : Promise.resolve({ leader: m.leader, header: { member_id: m.id } }),
    close: () => {},
  }) as unknown as EtcdMemberClient;

function membersOf(fakes: FakeMember[]): { members: EtcdMembers; call: () => Promise<string> } {
  const clients = fakes.map(clientOf);
  const members = new EtcdMembers(clients, 1000);
  const call = () =>
    members.run((client) => {
      const m = fakes[clients.indexOf(client)]!;
      m.calls++;
      const failure = m.failures.shift();
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

  it("hands a call a member failed as unavailable to the next member, 3 tries in all", async () => {
    const refused = () => unavailable("connection refused");
    const fakes = [member("11", "11", [refused()]), member("22", "11", [refused()]), member("33", "11")];
    const { call } = membersOf(fakes);
    assert.equal(await call(), "33");
    assert.deepEqual(
      fakes.map((m) => m.calls),
      [1, 1, 1],
    );

    const allDown = [0, 1, 2].map(() => member("44", "44", [refused(), refused(), refused()]));
    await assert.rejects(membersOf(allDown).call(), { code: status.UNAVAILABLE });
  });

  it("retries a single member's unavailable call on the same member", async () => {
    const fakes = [member("11", "11", [unavailable("reset"), unavailable("reset")])];
    assert.equal(await membersOf(fakes).call(), "11");
    assert.equal(fakes[0]!.calls, 3);
  });

  it("hands on a try whose deadline passed, and gives each try a deadline of its own", async () => {
    const clients = [0, 1].map((i) => clientOf(member(String(i), "0")));
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
