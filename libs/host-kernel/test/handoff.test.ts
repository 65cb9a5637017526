// The shared VMM handoff socket (docs/vmm-handoff.md) on this host's kernel: framing across
// writes, fds with their message, refusals. The services' own messages are tested with them.
import assert from "node:assert/strict";
import { mkdtempSync, openSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  HandoffRefusal,
  HandoffServer,
  MAX_HANDOFF_MESSAGE,
  closeFd,
  connectUnix,
  nextHandoffMessage,
  sendHandoffMessage,
  sendWithFds,
  type HandoffMessage,
} from "../src/index.js";
import { handoffFrame } from "../src/handoff-framing.js";

describe("HandoffServer and its client", () => {
  let dir: string;
  let server: HandoffServer;
  const seen: string[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "handoff-lib-"));
    // An echo session: answers each message with its type and how many fds came with it; keeps
    // no fd, so the server closes them all. "refuse" is refused.
    server = HandoffServer.listen(join(dir, "socket"), (connection) => {
      let last = "nothing";
      return {
        message: (message: HandoffMessage, fds) => {
          last = message.type;
          if (message.type === "refuse") throw new HandoffRefusal("TEST_REFUSAL", "refused on request");
          connection.send({ type: "echo", of: message.type, fds: fds.length });
        },
        end: () => seen.push(`end after ${last}`),
      };
    });
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the socket file has mode 0660 (bound privately, then renamed into place)", () => {
    assert.equal(statSync(server.path).mode & 0o777, 0o660);
  });

  it("two messages in one write, and one split over two writes, arrive whole and in order; the client reads one frame at a time", async () => {
    const fd = connectUnix(server.path);
    try {
      const a = handoffFrame({ type: "a" });
      const b = handoffFrame({ type: "b" });
      const c = handoffFrame({ type: "c" });
      const both = new Uint8Array(a.length + b.length);
      both.set(a);
      both.set(b, a.length);
      sendWithFds(fd, both);
      sendWithFds(fd, c.subarray(0, 3));
      await new Promise((r) => setTimeout(r, 20));
      sendWithFds(fd, c.subarray(3));
      const answers: Awaited<ReturnType<typeof nextHandoffMessage>>[] = [];
      for (let i = 0; i < 3; i++) answers.push(await nextHandoffMessage(fd));
      assert.deepEqual(
        answers.map((m) => (m === "closed" ? m : m.message.of)),
        ["a", "b", "c"],
      );
    } finally {
      closeFd(fd);
    }
  });

  it("fds ride with their message; the ones the session does not take are closed by the server", async () => {
    const fd = connectUnix(server.path);
    const file = openSync(join(dir, "some-file"), "w");
    const openFds = () => readdirSync("/proc/self/fd").length;
    try {
      sendHandoffMessage(fd, { type: "ping" });
      await nextHandoffMessage(fd); // the server's end of the connection is open from here on
      const before = openFds();
      sendHandoffMessage(fd, { type: "with-fds" }, [file, file]);
      const answer = await nextHandoffMessage(fd);
      assert.equal(answer !== "closed" && answer.message.fds, 2);
      assert.equal(openFds(), before, "the server's two received copies are closed again");
    } finally {
      closeFd(file);
      closeFd(fd);
    }
  });

  it("a refused message gets a 'refused' message with its reason, then the connection ends (session end called)", async () => {
    const fd = connectUnix(server.path);
    try {
      sendHandoffMessage(fd, { type: "refuse" });
      const answer = await nextHandoffMessage(fd);
      assert.notEqual(answer, "closed");
      assert.deepEqual(answer !== "closed" && [answer.message.type, answer.message.reason], [
        "refused",
        "TEST_REFUSAL",
      ]);
      assert.equal(await nextHandoffMessage(fd), "closed");
      assert.equal(seen.filter((s) => s === "end after refuse").length, 1);
    } finally {
      closeFd(fd);
    }
  });

  it("a frame announcing more than 64 KiB is MESSAGE_TOO_LARGE; one that is not a JSON object with a type is MESSAGE_INVALID", async () => {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_HANDOFF_MESSAGE + 1);
    for (const [bytes, reason] of [
      [header, "MESSAGE_TOO_LARGE"],
      [handoffFrame([1, 2]), "MESSAGE_INVALID"],
      [handoffFrame({ type: 3 }), "MESSAGE_INVALID"],
    ] as const) {
      const fd = connectUnix(server.path);
      try {
        sendWithFds(fd, bytes);
        const answer = await nextHandoffMessage(fd);
        assert.equal(answer !== "closed" && answer.message.reason, reason);
      } finally {
        closeFd(fd);
      }
    }
  });
});
