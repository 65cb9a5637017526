// The leader of a real 3-member etcd cluster killed (kill -9) while conditional writes run through
// EtcdMembers: no try goes to a follower (one that has not noticed the death forwards the write to
// the dead leader, where nothing answers it until the try's deadline or etcd's own request timeout:
// the writes wait for the new leader instead), and every writer's counter ends at the number of
// increments it was told applied (a write whose answer was lost is read back before it is sent
// again: nothing lost, nothing applied twice). Without etcd on PATH the suite is skipped loudly, unless CI=true, where that is a failure.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  COMPARE_EQUAL,
  CompareTarget,
  connectEtcdMember,
  EtcdCallError,
  type EtcdMemberClient,
  type EtcdTxnRequest,
} from "../src/etcd-member-client.js";
import { EtcdMembers } from "../src/etcd-members.js";
import { EtcdCluster } from "../src/testing/etcd-cluster.js";
import { etcdTestsSkipReason } from "../src/testing/etcd-server.js";

const skip = etcdTestsSkipReason();
const WRITERS = 6;
// Longer than an election of the cluster (PATIENT_RAFT: 2-4 s) on a loaded machine, so the wait
// for the new leader never runs out.
const CALL_TIMEOUT_MS = 15_000;

interface Try {
  member: number;
  /** The gRPC status a failed try ended with; undefined when it was answered. */
  failed?: status;
}

/** Member clients that log each call's member and outcome into `tries`. */
function recordingClients(endpoints: string[], tries: Try[]): EtcdMemberClient[] {
  return endpoints.map((endpoint, member) => {
    const client = connectEtcdMember(`http://${endpoint}`);
    const logged = <T>(answer: Promise<T>) =>
      answer.then(
        (value) => (tries.push({ member }), value),
        (error: unknown) => {
          tries.push({ member, failed: error instanceof EtcdCallError ? error.code : status.UNKNOWN });
          throw error;
        },
      );
    return {
      range: (request, deadline) => logged(client.range(request, deadline)),
      txn: (request, deadline) => logged(client.txn(request, deadline)),
      status: (deadline) => client.status(deadline),
      close: () => client.close(),
    };
  });
}

describe("EtcdMembers when the leader is killed", { skip }, () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await EtcdCluster.start(3);
  });
  after(() => cluster?.stop());

  it("holds writes for the new leader instead of a follower, and loses or doubles none", async () => {
    const tries: Try[] = [];
    const members = new EtcdMembers(recordingClients(cluster.endpoints, tries), CALL_TIMEOUT_MS);
    const leader = await cluster.leader();
    const applied = new Array<number>(WRITERS).fill(0);
    let killed = false;
    let afterKill = 0;
    let stop = false;

    // A counter per writer, increased by a Txn conditioned on the revision it last saw.
    const writer = async (w: number) => {
      const key = Buffer.from(`kill-test/w${w}`);
      let revision = 0;
      while (!stop) {
        const next = Buffer.from(String(applied[w]! + 1));
        const request: EtcdTxnRequest = {
          compare: [{ key, target: CompareTarget.Mod, result: COMPARE_EQUAL, mod_revision: revision }],
          success: [{ request_put: { key, value: next } }],
          failure: [{ request_range: { key } }],
        };
        const answer = await members.run((client, deadline) => client.txn(request, deadline));
        const found = answer.responses?.[0]?.response_range?.kvs?.[0];
        if (!answer.succeeded) {
          // The condition failed: only this writer writes its key, so a lost answer's own write
          // applied (the read-back says so), never anyone else's.
          assert.equal(found?.value?.toString(), next.toString(), `writer ${w}: a write it did not make`);
        }
        applied[w]!++;
        revision = answer.succeeded ? answer.header.revision : found!.mod_revision!;
        if (killed) afterKill++;
      }
    };
    const writing = Array.from({ length: WRITERS }, (_, w) => writer(w));

    // Kill once the writes go to the leader (the first look at the members' status has ended).
    while (tries.filter((t) => t.member === leader && t.failed === undefined).length < 50)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const killedAt = tries.length;
    await cluster.kill(leader);
    killed = true;
    while (afterKill < 50) await new Promise((resolve) => setTimeout(resolve, 10));
    stop = true;
    await Promise.all(writing);
    members.close();

    // Tries answered by the old leader just before it died may be logged after `killedAt`.
    const afterTheKill = tries.slice(killedAt).filter((t) => t.member !== leader);
    assert.ok(tries.slice(killedAt).some((t) => t.member === leader && t.failed !== undefined));
    assert.deepEqual(
      afterTheKill.filter((t) => t.failed !== undefined),
      [],
      "a try failed on a live member (sent to a follower, which forwarded it to the dead leader)",
    );
    const newLeader = await cluster.leader();
    assert.deepEqual(
      afterTheKill.filter((t) => t.member !== newLeader),
      [],
      "a write answered by a member that does not lead",
    );

    const reader = new EtcdMembers(
      cluster.endpoints.map((endpoint) => connectEtcdMember(`http://${endpoint}`)),
      CALL_TIMEOUT_MS,
    );
    try {
      for (let w = 0; w < WRITERS; w++) {
        const stored = await reader.run((client, deadline) =>
          client.range({ key: Buffer.from(`kill-test/w${w}`) }, deadline),
        );
        assert.equal(Number(stored.kvs?.[0]?.value?.toString()), applied[w], `writer ${w}'s counter`);
      }
    } finally {
      reader.close();
    }
  });
});
