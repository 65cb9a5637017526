import type { Store } from "@vplane/store";
import type { Logger } from "@vplane/service-kit";
import type { AccessTokens } from "./access/access-tokens.js";
import type { AuditLog } from "./access/audit-log.js";
import type { EventStreams } from "./http/event-stream.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HostConnections } from "./hosts/host-clients.js";
import type { HostHealthMonitor } from "./hosts/host-health.js";
import type { HostLeases } from "./hosts/host-leases.js";
import type { HostStates } from "./hosts/host-states.js";
import type { OrphanReconciler } from "./hosts/orphan-reconciler.js";
import type { OperationRecovery } from "./operations/operation-recovery.js";
import type { ReplicaHeartbeats } from "./operations/replica-heartbeats.js";
import type { OperationRunner } from "./operations/operation-runner.js";
import type { ProtoJson } from "./devices/proto-json.js";
import type { HostRegistry } from "./registry/host-registry.js";
import type { OperationRecords } from "./operations/operation-records.js";
import type { VmRegistry } from "./registry/vm-registry.js";
import type { VmLifecycle } from "./vms/vm-lifecycle.js";
import type { VmMigrations } from "./vms/vm-migration.js";

/** The fleet's clocks, ms (the gateway options of the same names say what each does). */
export interface FleetTiming {
  hostLeaseMs: number;
  hostProbeMs: number;
  replicaLeaseMs: number;
  reconcileMs: number;
  orphanGraceMs: number;
}

/** Everything the routes use, built once per gateway (see startGateway / buildGatewayServices). */
export interface GatewayServices {
  log: Logger;
  /** Where state-changing calls are audited; absent: not audited (tests that do not look). */
  audit?: AuditLog;
  store: Store;
  tokens: AccessTokens;
  metrics: GatewayMetrics;
  hosts: HostRegistry;
  /** Leases of the hosts that joined by themselves (their agents' heartbeats). */
  leases: HostLeases;
  /** This replica's view of the hosts' health (startGateway starts its probe loop). */
  health: HostHealthMonitor;
  hostStates: HostStates;
  /** Removes devices no VM owns, marks VMs whose devices vanished (startGateway starts it). */
  reconciler: OrphanReconciler;
  fleet: FleetTiming;
  vms: VmRegistry;
  operations: OperationRecords;
  runner: OperationRunner;
  connections: HostConnections;
  lifecycle: VmLifecycle;
  migrations: VmMigrations;
  /** Heartbeat of this replica; ends the operations of replicas that stopped (startGateway runs it). */
  recovery: OperationRecovery;
  /** Every replica's heartbeat: who has stopped (their operations, their Idempotency-Keys). */
  heartbeats: ReplicaHeartbeats;
  /** This replica's name in heartbeats, operation owners and Idempotency-Key reservations. */
  instanceId: string;
  /** The proto3 JSON mapping of the services' messages (device endpoints). */
  proto: ProtoJson;
  /** Open SSE streams, ended when the gateway closes. */
  streams: EventStreams;
  limits: {
    bodyLimitBytes: number;
    /** Requests per second per verified principal, or per client address without one; 0: off. */
    rateLimitPerSecond: number;
    /** Failed authentications per second per client address (with rateLimitPerSecond > 0). */
    authFailuresPerSecond: number;
    /** How long a retry waits for the first request with its Idempotency-Key. */
    idempotencyWaitMs?: number;
  };
}
