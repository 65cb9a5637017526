import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  credentials,
  makeGenericClientConstructor,
  type ClientDuplexStream,
  type ServiceDefinition,
} from "@grpc/grpc-js";
import { startService, type ServiceDescription } from "../src/service-runner.js";
import { VplaneError } from "../src/vplane-error.js";
import { silentLog, testConfig } from "./support.js";

/** One bidirectional method over raw bytes: enough to hold the handler adapter to its contract. */
const chatDefinition: ServiceDefinition = {
  chat: {
    path: "/vplane.testing.v1.Chat/Chat",
    requestStream: true,
    responseStream: true,
    requestSerialize: (bytes: Buffer) => bytes,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (bytes: Buffer) => bytes,
    responseDeserialize: (bytes: Buffer) => bytes,
    originalName: "chat",
  },
};

/** Acknowledges each message; when the client's side ends, answers FAILED_PRECONDITION (no "commit"). */
const chatDescription: ServiceDescription<Record<string, never>> = {
  name: "chat",
  envPrefix: "CHAT",
  defaultPort: 0,
  options: {},
  start: ({ handlers }) =>
    Promise.resolve({
      services: [
        {
          definition: chatDefinition,
          implementation: {
            chat: handlers.bidiStream<Buffer, Buffer>(async (requests, send) => {
              for await (const request of requests) await send(Buffer.from(`ack ${request.toString()}`));
              throw new VplaneError({
                code: "FAILED_PRECONDITION",
                reason: "NO_COMMIT",
                message: "ended without a commit",
              });
            }),
          },
        },
      ],
    }),
};

describe("bidirectional streams", () => {
  it("a handler that ends after the client's side has ended still sends its final status (it was destroyed with the requests' end)", async () => {
    const service = await startService(chatDescription, testConfig(), silentLog);
    const Chat = makeGenericClientConstructor(chatDefinition, "Chat");
    const client = new Chat(service.server.address, credentials.createInsecure());
    try {
      const call = (client as unknown as { chat(): ClientDuplexStream<Buffer, Buffer> }).chat();
      const acks: string[] = [];
      call.on("data", (ack: Buffer) => acks.push(ack.toString()));
      const status = new Promise<{ code: number; details: string }>((resolve) => call.on("status", resolve));
      call.on("error", () => undefined); // the status says it
      call.write(Buffer.from("one"));
      call.end();
      const timeout = new Promise<"none">((resolve) => setTimeout(() => resolve("none"), 3000).unref());
      const answer = await Promise.race([status, timeout]);
      assert.notEqual(answer, "none", "the final status arrived without the client cancelling");
      assert.deepEqual([(answer as { code: number }).code, acks], [9, ["ack one"]]);
    } finally {
      client.close();
      await service.stop(1000);
    }
  });
});
