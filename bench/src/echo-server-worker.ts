// Runs one echo server in a worker thread (its own event loop, like a separate server process)
// so the benchmark's client and server do not share a loop: either a bare grpc-js server (the
// baseline) or the same method on a service-kit server with logging, health, reflection and
// the error model on.
import { openSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import {
  EchoServiceService,
  type EchoRequest,
  type EchoResponse,
} from "@vplane/proto/gen/vplane/testing/v1/echo";
import {
  configSpecOf,
  createLogger,
  echoService,
  loadConfig,
  startService,
  type ServiceDescription,
} from "@vplane/service-kit";
import pino from "pino";

const kind = (workerData as { kind: "bare" | "kit" }).kind;

async function startBare(): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = new Server();
  server.addService(EchoServiceService, {
    echo: (call: ServerUnaryCall<EchoRequest, EchoResponse>, callback: sendUnaryData<EchoResponse>) =>
      callback(null, { payload: call.request.payload }),
    sleep: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ completed: boolean }>) =>
      callback(null, { completed: true }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

async function startKit(): Promise<{ port: number; stop: () => Promise<void> }> {
  const description: ServiceDescription<Record<string, never>> = {
    name: "bench-echo",
    envPrefix: "BENCH",
    defaultPort: 0,
    options: {},
    start: ({ handlers }) => Promise.resolve({ services: [echoService(handlers)] }),
  };
  const config = loadConfig(configSpecOf(description), { argv: [], env: {} });
  // Info level: one log line per call is written, as in production, to /dev/null.
  const log = createLogger({
    name: "bench-echo",
    level: "info",
    destination: pino.destination({ fd: openSync("/dev/null", "w"), sync: false }),
  });
  const running = await startService(description, config, log);
  return { port: running.server.port, stop: () => running.stop(1000).then(() => undefined) };
}

const server = kind === "bare" ? await startBare() : await startKit();
parentPort!.postMessage({ port: server.port });
parentPort!.once("message", () => {
  void server.stop().then(() => process.exit(0));
});
