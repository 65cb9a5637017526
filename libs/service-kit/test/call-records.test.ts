import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { Metadata, type ServerUnaryCall } from "@grpc/grpc-js";
import pino from "pino";
import { CallHandlers } from "../src/call-handlers.js";

/** A unary server call as grpc-js hands it to a handler: what CallHandlers reads of it. */
function unaryCallOf<Req>(request: Req): ServerUnaryCall<Req, unknown> {
  return Object.assign(new EventEmitter(), {
    request,
    metadata: new Metadata(),
    getPath: () => "/vplane.testing.v1.EchoService/Echo",
    getDeadline: () => Infinity,
  }) as unknown as ServerUnaryCall<Req, unknown>;
}

describe("a call's log line", () => {
  // Node's HTTP/2 session writes what grpc-js was handed in the check phase of the turn that
  // answered (SetImmediate): a log line written in that turn would hold the answer back.
  it("is written after the turn that answered the call, once its answer has gone out", async () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const handlers = new CallHandlers(log);
    const counts = await new Promise<number[]>((resolve) => {
      handlers.unary(() => ({ payload: "a" }))(unaryCallOf({}), () => {
        const seen = [lines.length];
        // Queued when the answer is handed over, as HTTP/2 queues its write: runs before the record.
        setImmediate(() => {
          seen.push(lines.length);
          setImmediate(() => resolve([...seen, lines.length]));
        });
      });
    });
    assert.deepEqual(counts, [0, 0, 1]);
    assert.match(lines[0]!, /"method":"\/vplane.testing.v1.EchoService\/Echo"/);
    assert.match(lines[0]!, /"status":"OK"/);
  });
});
