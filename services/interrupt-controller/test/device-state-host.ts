import { after, before } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";
import { interruptControllerDescription } from "../src/interrupt-controller-service.js";
import { removeDir, tempDataDir, type Method, type ResponseOf } from "./service-harness.js";

type RequestOf<M> = M extends Method<infer Req, infer _Res> ? Req : never;

/** Typed unary calls by method name on a ts-proto grpc-js client; failures reject with a VplaneError. */
function caller<C extends object>(client: C) {
  return <K extends keyof C>(method: K, request: RequestOf<C[K]>): Promise<ResponseOf<C[K]>> => {
    const fn = (client[method] as unknown as Method<unknown, unknown>).bind(client);
    return unaryCall(fn, request, { timeoutMs: 10_000 }) as Promise<ResponseOf<C[K]>>;
  };
}

/**
 * One host's interrupt-controller service (its own data folder), with a client for the
 * controller API (`ic`) and one for the DeviceStateService migration drives (`ds`).
 */
export interface Host {
  dataDir: string;
  service: ServiceUnderTest;
  ic: ReturnType<typeof caller<InterruptControllerServiceClient>>;
  ds: ReturnType<typeof caller<DeviceStateServiceClient>>;
  /** The DeviceStateService client itself, for its streaming calls. */
  dsClient: DeviceStateServiceClient;
  stop(): Promise<void>;
}

export async function startHost(dataDir = tempDataDir()): Promise<Host> {
  const service = await startServiceForTests(interruptControllerDescription, { VPLANE_DATA_DIR: dataDir });
  const icClient = new InterruptControllerServiceClient(service.address, credentials.createInsecure());
  const dsClient = new DeviceStateServiceClient(service.address, credentials.createInsecure());
  return {
    dataDir,
    service,
    ic: caller(icClient),
    ds: caller(dsClient),
    dsClient,
    async stop() {
      icClient.close();
      dsClient.close();
      await service.stop(1000);
    },
  };
}

/** A source and a destination host for the enclosing describe: started before, removed after. */
export function twoHosts(): { source: Host; destination: Host } {
  const hosts = {} as { source: Host; destination: Host };
  before(async () => {
    hosts.source = await startHost();
    hosts.destination = await startHost();
  });
  after(async () => {
    for (const host of [hosts.source, hosts.destination]) {
      await host.stop();
      removeDir(host.dataDir);
    }
  });
  return hosts;
}
