import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Server, ServerCredentials, credentials, type ServerDuplexStream } from "@grpc/grpc-js";
import {
  MigrationServiceClient,
  MigrationServiceService,
} from "@vplane/proto/gen/vplane/migration/v1/service";
import { VplaneError } from "@vplane/service-kit";
import { PeerStream } from "../src/live-migration/peer-stream.js";

describe("PeerStream (the source's end of ReceiveMigration)", () => {
  it("a send waiting under back-pressure ends at once when the migration is cancelled (a cancelled stream never drains: the send used to wait for ever, and the operation with it)", async () => {
    // A destination that never reads what it is sent.
    const server = new Server();
    server.addService(MigrationServiceService, {
      receiveMigration: (call: ServerDuplexStream<unknown, unknown>) => call.pause(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const client = new MigrationServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const peer = new PeerStream(client.receiveMigration());
      const chunk = {
        $case: "ramChunk" as const,
        value: { offset: 0n, data: Buffer.alloc(256 * 1024), crc32: 0 },
      };
      let waiting: Promise<void> | undefined;
      for (let i = 0; i < 1000 && !waiting; i++) {
        const send = peer.send(chunk);
        const outcome = await Promise.race([
          send.then(() => "sent"),
          new Promise((resolve) => setTimeout(() => resolve("waiting"), 200)),
        ]);
        if (outcome === "waiting") waiting = send;
      }
      assert.ok(waiting, "the destination's window filled up");
      const cancelled = new VplaneError({
        code: "CANCELLED",
        reason: "OPERATION_CANCELLED",
        message: "cancelled",
      });
      peer.interrupt(cancelled);
      const ended = await Promise.race([
        waiting.then(
          () => "resolved",
          (error: unknown) => error,
        ),
        new Promise((resolve) => setTimeout(() => resolve("still waiting"), 2000)),
      ]);
      assert.equal(ended, cancelled);
      await peer.abandon(100);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
