import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  credentials,
  type CallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import type { WatchVcpuSignalsResponse } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import {
  configSpecOf,
  loadConfig,
  startService,
  unaryCall,
  type RunningService,
  type VplaneError,
} from "@vplane/service-kit";
import { suiteFixture } from "@vplane/service-kit/testing";
import { interruptControllerDescription } from "../src/interrupt-controller-service.js";

type Client = InterruptControllerServiceClient;
export type Method<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The service started in this process on a free port, with a real gRPC client. */
export interface Harness {
  client: Client;
  dataDir: string;
  running: RunningService;
  /** Calls a unary method by name; rejects with the VplaneError the status carries. */
  call<K extends keyof Client>(
    method: K,
    request: Parameters<Client[K] & Method<unknown, unknown>>[0],
  ): Promise<ResponseOf<Client[K]>>;
  stop(): Promise<void>;
}

export type ResponseOf<M> = M extends Method<infer _Req, infer Res> ? Res : never;

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), "vplane-ic-test-"));
}

export async function startHarness(dataDir = tempDataDir(), extraArgs: string[] = []): Promise<Harness> {
  const config = loadConfig(configSpecOf(interruptControllerDescription), {
    argv: ["--addr=127.0.0.1:0", `--data-dir=${dataDir}`, "--log-level=silent", ...extraArgs],
    env: {},
  });
  const running = await startService(interruptControllerDescription, config);
  const client = new InterruptControllerServiceClient(running.server.address, credentials.createInsecure());
  return {
    client,
    dataDir,
    running,
    call(method, request) {
      const fn = (client[method] as unknown as Method<unknown, unknown>).bind(client);
      return unaryCall(fn, request, { timeoutMs: 10_000 }) as never;
    },
    async stop() {
      client.close();
      await running.stop(1000);
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Collects a signal stream's messages; `next(n)` waits until n have arrived. */
export function collectSignals(stream: ClientReadableStream<WatchVcpuSignalsResponse>) {
  const messages: WatchVcpuSignalsResponse[] = [];
  const waiters: (() => void)[] = [];
  stream.on("data", (m: WatchVcpuSignalsResponse) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  stream.on("error", () => undefined);
  return {
    messages,
    async next(count: number, timeoutMs = 5000): Promise<WatchVcpuSignalsResponse[]> {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline)
          throw new Error(`only ${messages.length} of ${count} signal messages arrived`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return messages.slice(0, count);
    },
    cancel: () => stream.cancel(),
  };
}

/** Awaits a rejected call and returns its VplaneError. */
export async function failure(promise: Promise<unknown>): Promise<VplaneError> {
  try {
    await promise;
  } catch (error) {
    return error as VplaneError;
  }
  throw new Error("expected the call to fail");
}

/**
 * The service for a describe block's tests: started before them, stopped (its data folder
 * removed) after them.
 */
export function suiteHarness(extraArgs: string[] = []): Harness {
  return suiteFixture(
    () => startHarness(tempDataDir(), extraArgs),
    async (h) => {
      await h.stop();
      removeDir(h.dataDir);
    },
  );
}
