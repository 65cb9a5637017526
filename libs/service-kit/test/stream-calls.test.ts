// serverStreamCall cancels a stream only when its reader leaves before the end: a stream read to
// its end is left alone (a cancel then changes nothing, but runs down grpc-js's layers inside the
// migration's downtime, issue 14).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClientReadableStream } from "@grpc/grpc-js";
import { serverStreamCall } from "../src/stream-calls.js";

/** A server stream of `messages` that counts its cancels. */
function fakeStream(messages: number[]): {
  method: () => ClientReadableStream<number>;
  cancels: () => number;
} {
  let cancels = 0;
  // Read with for await, as grpc-js's stream is.
  const call = Object.assign(messages.values(), { cancel: () => void cancels++ });
  return { method: () => call as unknown as ClientReadableStream<number>, cancels: () => cancels };
}

test("a server stream read to its end is not cancelled", async () => {
  const { method, cancels } = fakeStream([1, 2, 3]);
  const read: number[] = [];
  for await (const message of serverStreamCall(method, {})) read.push(message);
  assert.deepEqual(read, [1, 2, 3]);
  assert.equal(cancels(), 0);
});

test("a server stream its reader leaves early is cancelled", async () => {
  const { method, cancels } = fakeStream([1, 2, 3]);
  for await (const message of serverStreamCall(method, {})) if (message === 2) break;
  assert.equal(cancels(), 1);
});
