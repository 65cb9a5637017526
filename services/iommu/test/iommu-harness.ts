import { after, before } from "node:test";
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
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import type { StreamEventsResponse } from "@vplane/proto/gen/vplane/iommu/v1/fault";
import { unaryCall, type RunningService, type VplaneError } from "@vplane/service-kit";
import { startServiceForTests } from "@vplane/service-kit/testing";
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

/** Typed unary calls by method name on a ts-proto grpc-js client, and the error one fails with. */
function callerOf<C extends object>(client: C) {
  const call = <K extends keyof C>(method: K, request: RequestOf<C[K]>): Promise<ResponseOf<C[K]>> => {
    const fn = (client[method] as unknown as Unary<unknown, unknown>).bind(client);
    return unaryCall(fn, request, { timeoutMs: 10_000 }) as Promise<ResponseOf<C[K]>>;
  };
  const failure = async <K extends keyof C>(method: K, request: RequestOf<C[K]>): Promise<VplaneError> => {
    try {
      await call(method, request);
    } catch (error) {
      return error as VplaneError;
    }
    throw new Error(`${String(method)} succeeded but was expected to fail`);
  };
  return { call, failure };
}

type DeviceStateCaller = ReturnType<typeof callerOf<DeviceStateServiceClient>>;

/** The iommu service in this process on a free port, real gRPC clients, and its registry. */
export interface IommuHarness {
  client: Client;
  dataDir: string;
  registry: SmmuRegistry;
  running: RunningService;
  call<K extends keyof Client>(method: K, request: RequestOf<Client[K]>): Promise<ResponseOf<Client[K]>>;
  /** The VplaneError a call fails with (the test fails if it succeeds). */
  failure<K extends keyof Client>(method: K, request: RequestOf<Client[K]>): Promise<VplaneError>;
  /** The DeviceStateService the migration service drives, on the same server. */
  ds: DeviceStateCaller["call"];
  dsFailure: DeviceStateCaller["failure"];
  /** The DeviceStateService client itself, for its streaming calls. */
  dsClient: DeviceStateServiceClient;
  stop(): Promise<void>;
}

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), "vplane-iommu-test-"));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** `env`: further configuration, as a deployment would set it (VPLANE_IOMMU_METRICS_ADDR ...). */
export async function startIommu(
  dataDir = tempDataDir(),
  env: Record<string, string> = {},
): Promise<IommuHarness> {
  let registry: SmmuRegistry | undefined;
  const description = iommuDescriptionWith({ onRegistry: (r) => (registry = r) });
  const running = await startServiceForTests(description, { VPLANE_DATA_DIR: dataDir, ...env });
  const client = new IommuServiceClient(running.address, credentials.createInsecure());
  const dsClient = new DeviceStateServiceClient(running.address, credentials.createInsecure());
  const iommu = callerOf(client);
  const deviceState = callerOf(dsClient);
  return {
    client,
    dataDir,
    registry: registry!,
    running,
    call: iommu.call,
    failure: iommu.failure,
    ds: deviceState.call,
    dsFailure: deviceState.failure,
    dsClient,
    async stop() {
      for (const cancel of openStreams) cancel();
      openStreams.clear();
      client.close();
      dsClient.close();
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

/** Two hosts' iommu services (their own data folders) for the enclosing describe. */
export function twoHosts(): { source: IommuHarness; destination: IommuHarness } {
  const hosts = {} as { source: IommuHarness; destination: IommuHarness };
  before(async () => {
    hosts.source = await startIommu();
    hosts.destination = await startIommu();
  });
  after(async () => {
    for (const h of [hosts.source, hosts.destination]) {
      await h.stop();
      removeDir(h.dataDir);
    }
  });
  return hosts;
}
