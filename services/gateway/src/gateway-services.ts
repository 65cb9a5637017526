import type { Store } from "@vplane/store";
import type { Logger } from "@vplane/service-kit";
import type { AccessTokens } from "./access-tokens.js";
import type { EventStreams } from "./event-stream.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HostConnections } from "./host-clients.js";
import type { OperationRecovery } from "./operation-recovery.js";
import type { OperationRunner } from "./operation-runner.js";
import type { ProtoJson } from "./proto-json.js";
import type { HostRegistry } from "./registry/host-registry.js";
import type { OperationRegistry } from "./registry/operation-registry.js";
import type { VmRegistry } from "./registry/vm-registry.js";
import type { VmLifecycle } from "./vm-lifecycle.js";
import type { VmMigrations } from "./vm-migration.js";

/** Everything the routes use, built once per gateway (see startGateway / buildGatewayServices). */
export interface GatewayServices {
  log: Logger;
  store: Store;
  tokens: AccessTokens;
  metrics: GatewayMetrics;
  hosts: HostRegistry;
  vms: VmRegistry;
  operations: OperationRegistry;
  runner: OperationRunner;
  connections: HostConnections;
  lifecycle: VmLifecycle;
  migrations: VmMigrations;
  /** Heartbeat of this replica; ends the operations of replicas that stopped (startGateway runs it). */
  recovery: OperationRecovery;
  /** The proto3 JSON mapping of the services' messages (device endpoints). */
  proto: ProtoJson;
  /** Open SSE streams, ended when the gateway closes. */
  streams: EventStreams;
  limits: { bodyLimitBytes: number; rateLimitPerSecond: number };
}
