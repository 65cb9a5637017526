// StopAndCopy's response headers leave before the devices pause (issue 14): the migration service
// then reads them before the downtime, which runs from the pause, instead of with the stop's
// first chunk inside it. Its end (the trailers) follows once the last chunk has left, so that the
// migration service forwards the chunk before it reads the end.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { Metadata, type ServerWritableStream } from "@grpc/grpc-js";
import type {
  StopAndCopyRequest,
  StopAndCopyResponse,
} from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { CallHandlers } from "../src/call-handlers.js";
import { deviceStateService, type DeviceStateHandlers } from "../src/device-state-service.js";
import { silentLog } from "./support.js";

test("StopAndCopy lets its response headers go out before it pauses the devices, and its last chunk before its end", async () => {
  const events: string[] = [];
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const call = Object.assign(new EventEmitter(), {
    request: { vm: "vm-1", destination: "10.0.0.2:50053" },
    metadata: new Metadata(),
    getPath: () => "/vplane.devicestate.v1.DeviceStateService/StopAndCopy",
    getDeadline: () => Infinity,
    // As Node's HTTP/2 session does: what is handed over is written in the turn's check phase.
    sendMetadata: () => {
      events.push("headers handed over");
      setImmediate(() => events.push("headers written"));
    },
    write: (message: StopAndCopyResponse) => {
      events.push(`chunk ${message.chunk?.index}`);
      setImmediate(() => events.push(`chunk ${message.chunk?.index} written`));
      return true;
    },
    end: () => {
      events.push("end");
      ended();
    },
  }) as unknown as ServerWritableStream<StopAndCopyRequest, StopAndCopyResponse>;
  // Only StopAndCopy is called.
  const state = {
    stopAndCopy: () => {
      events.push("paused");
      return { sections: [], dirtyPages: [], pageSize: 0n, pausedAtUs: 1n };
    },
  } as Partial<DeviceStateHandlers> as DeviceStateHandlers;
  const { implementation } = deviceStateService(new CallHandlers(silentLog), state);
  const stopAndCopy = implementation["stopAndCopy"] as (call: unknown) => void;
  stopAndCopy(call);
  await done;
  assert.deepEqual(events, [
    "headers handed over",
    "headers written",
    "paused",
    "chunk 0",
    "chunk 0 written",
    "end",
  ]);
});
