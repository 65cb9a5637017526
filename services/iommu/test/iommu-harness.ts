import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  credentials,
  type CallOptions,
  type ClientUnaryCall,
  type Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import type { StreamEventsResponse } from "@vplane/proto/gen/vplane/iommu/v1/fault";
import {
  configSpecOf,
  loadConfig,
  startService,
  unaryCall,
  type RunningService,
  type VplaneError,
} from "@vplane/service-kit";
import { iommuDescriptionWith } from "../src/iommu-service.js";
import type { SmmuRegistry } from "../src/smmu-registry.js";

type Client = IommuServiceClient;
type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;
type RequestOf<M> = M extends Unary<infer Req, infer _Res> ? Req : never;
type ResponseOf<M> = M extends Unary<infer _Req, infer Res> ? Res : never;

/** The iommu service in this process on a free port, a real gRPC client, and its registry. */
export interface IommuHarness {
  client: Client;
  dataDir: string;
  registry: SmmuRegistry;
  running: RunningService;
  call<K extends keyof Client>(method: K, request: RequestOf<Client[K]>): Promise<ResponseOf<Client[K]>>;
  /** The VplaneError a call fails with (the test fails if it succeeds). */
  failure<K extends keyof Client>(method: K, request: RequestOf<Client[K]>): Promise<VplaneError>;
  stop(): Promise<void>;
}

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), "vplane-iommu-test-"));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function startIommu(dataDir = tempDataDir()): Promise<IommuHarness> {
  let registry: SmmuRegistry | undefined;
  const description = iommuDescriptionWith({ onRegistry: (r) => (registry = r) });
  const config = loadConfig(configSpecOf(description), {
    argv: ["--addr=127.0.0.1:0", `--data-dir=${dataDir}`, "--log-level=silent"],
    env: {},
  });
  const running = await startService(description, config);
  const client = new IommuServiceClient(running.server.address, credentials.createInsecure());
  const call = <K extends keyof Client>(method: K, request: RequestOf<Client[K]>) => {
    const fn = (client[method] as unknown as Unary<unknown, unknown>).bind(client);
    return unaryCall(fn, request, { timeoutMs: 10_000 }) as Promise<ResponseOf<Client[K]>>;
  };
  return {
    client,
    dataDir,
    registry: registry!,
    running,
    call,
    async failure(method, request) {
      try {
        await call(method, request);
      } catch (error) {
        return error as VplaneError;
      }
      throw new Error(`${String(method)} succeeded but was expected to fail`);
    },
    async stop() {
      for (const cancel of openStreams) cancel();
      openStreams.clear();
      client.close();
      await running.stop(1000);
    },
  };
}

/** Streams still open, cancelled by stop() so a failed test cannot keep the process alive. */
const openStreams = new Set<() => void>();

/** Collects a StreamEvents stream; `next(n)` resolves once n messages arrived. */
export function collect(client: Client, request: { name: string; fromSequence?: bigint }) {
  const stream = client.streamEvents({ name: request.name, fromSequence: request.fromSequence });
  const messages: StreamEventsResponse[] = [];
  let wake: (() => void) | undefined;
  stream.on("data", (m: StreamEventsResponse) => {
    messages.push(m);
    wake?.();
  });
  stream.on("error", () => undefined);
  const cancel = () => stream.cancel();
  openStreams.add(cancel);
  return {
    messages,
    async next(n: number, timeoutMs = 5000): Promise<StreamEventsResponse[]> {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${messages.length} of ${n} stream messages arrived`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      return messages.slice(0, n);
    },
    cancel: () => {
      openStreams.delete(cancel);
      cancel();
    },
  };
}
