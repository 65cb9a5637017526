import { readFileSync } from "node:fs";
import {
  Server,
  type ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { descriptorSetPath } from "@vplane/proto";
import type { Logger } from "./logger.js";
import { serverChannelOptions, type ChannelLimits } from "./channel-options.js";
import { HealthService } from "./health-service.js";

export interface ServiceRegistration {
  // ts-proto emits each service's definition as a typed object literal; grpc-js takes it as is.
  definition: ServiceDefinition<UntypedServiceImplementation> | Record<string, { path: string }>;
  implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  address: string;
  credentials: ServerCredentials;
  limits: ChannelLimits;
  services: ServiceRegistration[];
  log: Logger;
  /** Called when a shutdown starts, after health says NOT_SERVING: end long-lived streams. */
  onDrain?: () => void;
}

export type ShutdownOutcome = "graceful" | "forced";

/**
 * A started gRPC server with health (grpc.health.v1) and reflection. Health answers NOT_SERVING
 * until `markServing()` (the service says it is ready) and again from the moment a shutdown
 * starts, so a load balancer stops sending before the server stops accepting.
 */
export class GrpcServer {
  private shuttingDown: Promise<ShutdownOutcome> | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly address: string,
    private readonly health: HealthService,
    private readonly options: GrpcServerOptions,
  ) {}

  static async start(options: GrpcServerOptions): Promise<GrpcServer> {
    const server = new Server(serverChannelOptions(options.limits));
    const health = new HealthService(options.services.map((s) => serviceNameOf(s.definition)));
    health.addToServer(server);
    const reflection = new ReflectionService(
      loadFileDescriptorSetFromBuffer(readFileSync(descriptorSetPath)),
    );
    reflection.addToServer(server);
    for (const s of options.services) server.addService(s.definition as ServiceDefinition, s.implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(options.address, options.credentials, (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const host = options.address.slice(0, options.address.lastIndexOf(":"));
    return new GrpcServer(server, port, `${host}:${port}`, health, options);
  }

  markServing(): void {
    if (!this.shuttingDown) this.health.setAll("SERVING");
  }

  /**
   * Stops accepting calls, lets in-flight calls finish for up to graceMs, then cancels what is
   * left. Resolves with which of the two happened; calling it again returns the same promise.
   */
  shutdown(graceMs: number): Promise<ShutdownOutcome> {
    this.shuttingDown ??= new Promise<ShutdownOutcome>((resolve) => {
      this.health.setAll("NOT_SERVING");
      this.health.endWatches();
      this.options.onDrain?.();
      this.options.log.info({ graceMs }, "shutting down: draining in-flight calls");
      const timer = setTimeout(() => {
        this.options.log.warn({ graceMs }, "grace period over: cancelling in-flight calls");
        this.server.forceShutdown();
        resolve("forced");
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve("graceful");
      });
    });
    return this.shuttingDown;
  }
}

/** "vplane.testing.v1.EchoService" from a definition whose methods have "/pkg.Service/Method" paths. */
export function serviceNameOf(definition: GrpcServerOptions["services"][number]["definition"]): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error("service definition has no methods");
  return first.path.split("/")[1]!;
}
