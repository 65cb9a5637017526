import type { ChannelCredentials } from "@grpc/grpc-js";
import { OperationsClient } from "@vplane/proto/gen/google/longrunning/operations";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import type { Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import {
  HealthClient,
  clientChannelOptions,
  unaryCall,
  type HealthAnswer,
  type UnaryCallOptions,
  type VplaneError,
} from "@vplane/service-kit";
import type { GatewayMetrics } from "../gateway-metrics.js";
import type { HostAddresses } from "../schemas/host-schema.js";
import { CapabilitiesCache } from "./capabilities-cache.js";

export type ServiceKind = "interrupt-controller" | "iommu" | "migration";

/** The gRPC clients of one host's services, made with the gateway's (m)TLS credentials. */
export interface HostClients {
  interrupt: InterruptControllerServiceClient;
  iommu: IommuServiceClient;
  migration: MigrationServiceClient;
  /** google.longrunning.Operations of the migration service (same address). */
  migrationOperations: OperationsClient;
}

/**
 * Clients for every host the gateway talks to, kept per address set and reused (grpc-js keeps
 * one HTTP/2 connection per address), with each call's outcome and latency counted in metrics.
 */
export class HostConnections {
  private readonly clients = new Map<string, HostClients>();
  private readonly health = new Map<string, HealthClient>();
  private readonly capabilitiesCache = new CapabilitiesCache();

  constructor(
    private readonly credentials: ChannelCredentials,
    private readonly metrics: GatewayMetrics,
    readonly rpcTimeoutMs: number,
  ) {}

  clientsOf(addresses: HostAddresses): HostClients {
    const key = `${addresses.interruptController}|${addresses.iommu}|${addresses.migration}`;
    let clients = this.clients.get(key);
    if (!clients) {
      const options = clientChannelOptions();
      clients = {
        interrupt: new InterruptControllerServiceClient(
          addresses.interruptController,
          this.credentials,
          options,
        ),
        iommu: new IommuServiceClient(addresses.iommu, this.credentials, options),
        migration: new MigrationServiceClient(addresses.migration, this.credentials, options),
        migrationOperations: new OperationsClient(addresses.migration, this.credentials, options),
      };
      this.clients.set(key, clients);
    }
    return clients;
  }

  /**
   * One unary call through `unaryCall` with the gateway's deadline, counted by service, method
   * and status code; failures reject with the service's VplaneError (code, reason, errno...).
   */
  async call<Res>(
    service: ServiceKind,
    method: string,
    invoke: (options: UnaryCallOptions) => Promise<Res>,
    options: Omit<UnaryCallOptions, "timeoutMs"> & { timeoutMs?: number } = {},
  ): Promise<Res> {
    const stopTimer = this.metrics.rpcDuration.startTimer({ service, method });
    try {
      const response = await invoke({ timeoutMs: this.rpcTimeoutMs, ...options });
      this.metrics.rpcCalls.inc({ service, method, code: "OK" });
      return response;
    } catch (error) {
      this.metrics.rpcCalls.inc({ service, method, code: (error as VplaneError).code ?? "UNKNOWN" });
      throw error;
    } finally {
      stopTimer();
    }
  }

  /**
   * What the host's `service` answers to GetCapabilities, asked once per connection to it (kept
   * while the connection stays up: see CapabilitiesCache). Rejects like `call`.
   */
  capabilities(
    service: "interrupt-controller" | "iommu",
    addresses: HostAddresses,
  ): Promise<Capabilities | undefined> {
    const clients = this.clientsOf(addresses);
    const client = service === "interrupt-controller" ? clients.interrupt : clients.iommu;
    return this.capabilitiesCache.get(client.getChannel(), async () => {
      const answer = await this.call(service, "GetCapabilities", (o) =>
        unaryCall(client.getCapabilities.bind(client), {}, o),
      );
      return answer.capabilities;
    });
  }

  /** grpc.health.v1 Check of the whole server at `address`; never throws. */
  async healthOf(address: string, timeoutMs = 1000): Promise<HealthAnswer> {
    let client = this.health.get(address);
    if (!client) {
      client = new HealthClient(address, this.credentials);
      this.health.set(address, client);
    }
    return client.check(timeoutMs);
  }

  close(): void {
    for (const clients of this.clients.values()) {
      clients.interrupt.close();
      clients.iommu.close();
      clients.migration.close();
      clients.migrationOperations.close();
    }
    for (const client of this.health.values()) client.close();
    this.clients.clear();
    this.health.clear();
  }
}
