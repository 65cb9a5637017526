import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { ChannelCredentials } from "@grpc/grpc-js";
import { clientCredentials, type Logger } from "@vplane/service-kit";
import { openStore, type Store } from "@vplane/store";
import { AccessTokens } from "./access/access-tokens.js";
import { AuditLog } from "./access/audit-log.js";
import { buildApp } from "./app.js";
import { gatewayOptionsSpec, type GatewayOptions } from "./gateway-options.js";
import { EventStreams } from "./http/event-stream.js";
import { GatewayMetrics } from "./gateway-metrics.js";
import { sweepIdempotencyKeys } from "./http/idempotency.js";
import type { FleetTiming, GatewayServices } from "./gateway-services.js";
import { HostConnections } from "./hosts/host-clients.js";
import { HostHealthMonitor } from "./hosts/host-health.js";
import { HostLeases } from "./hosts/host-leases.js";
import { HostStates } from "./hosts/host-states.js";
import { OrphanReconciler } from "./hosts/orphan-reconciler.js";
import { OperationRecovery } from "./operations/operation-recovery.js";
import { ReplicaHeartbeats } from "./operations/replica-heartbeats.js";
import { OperationRunner } from "./operations/operation-runner.js";
import { ProtoJson } from "./devices/proto-json.js";
import { HostRegistry } from "./registry/host-registry.js";
import { OperationRecords } from "./operations/operation-records.js";
import { VmRegistry } from "./registry/vm-registry.js";
import { VmLifecycle } from "./vms/vm-lifecycle.js";
import { VmMigrations } from "./vms/vm-migration.js";

const IDEMPOTENCY_SWEEP_MS = 60 * 60 * 1000;

export interface GatewayParts {
  log: Logger;
  audit?: AuditLog;
  store: Store;
  tokens: AccessTokens;
  /** Credentials for the gRPC calls to host services (mutual TLS when configured). */
  credentials: ChannelCredentials;
  rpcTimeoutMs?: number;
  operationTimeoutMs?: number;
  /** How long a running operation's step waits for a registry that does not answer (default REGISTRY_OUTAGE_MS). */
  registryOutageMs?: number;
  limits?: Partial<GatewayServices["limits"]>;
  fleet?: Partial<FleetTiming>;
}

const DEFAULT_FLEET_TIMING: FleetTiming = {
  hostLeaseMs: gatewayOptionsSpec.hostLeaseMs.default,
  hostProbeMs: gatewayOptionsSpec.hostProbeMs.default,
  replicaLeaseMs: gatewayOptionsSpec.replicaLeaseMs.default,
  reconcileMs: gatewayOptionsSpec.reconcileMs.default,
  orphanGraceMs: gatewayOptionsSpec.orphanGraceMs.default,
};

/** Wires the registry, the host connections and the operation runner around one store. */
export function buildGatewayServices(parts: GatewayParts): GatewayServices {
  const vms = new VmRegistry(parts.store);
  const metrics = new GatewayMetrics(() => vms.countByState());
  const hosts = new HostRegistry(parts.store);
  const operations = new OperationRecords(parts.store);
  const connections = new HostConnections(parts.credentials, metrics, parts.rpcTimeoutMs ?? 10_000);
  const runner = new OperationRunner(
    operations,
    metrics,
    parts.log,
    parts.operationTimeoutMs ?? 300_000,
    parts.registryOutageMs,
  );
  const instanceId = `gw-${randomBytes(4).toString("hex")}`;
  const fleet = { ...DEFAULT_FLEET_TIMING, ...parts.fleet };
  const leases = new HostLeases(parts.store);
  const health = new HostHealthMonitor(connections, () => hosts.list(), fleet.hostProbeMs);
  const hostStates = new HostStates(parts.store, hosts, leases, health);
  const vmDeps = { hosts, hostStates, vms, operations, runner, connections, instanceId };
  const lifecycle = new VmLifecycle(vmDeps);
  const migrations = new VmMigrations(vmDeps);
  const heartbeats = new ReplicaHeartbeats(parts.store, fleet.replicaLeaseMs);
  const recovery = new OperationRecovery(
    { ...vmDeps, lifecycle, migrations, heartbeats, store: parts.store, log: parts.log },
    { heartbeatMs: Math.max(100, Math.round(fleet.replicaLeaseMs / 6)) },
  );
  const reconciler = new OrphanReconciler(
    { store: parts.store, hosts, vms, connections, metrics, log: parts.log, instanceId },
    { intervalMs: fleet.reconcileMs, graceMs: fleet.orphanGraceMs },
  );
  return {
    log: parts.log,
    ...(parts.audit ? { audit: parts.audit } : {}),
    store: parts.store,
    tokens: parts.tokens,
    metrics,
    hosts,
    leases,
    health,
    hostStates,
    reconciler,
    fleet,
    vms,
    operations,
    runner,
    connections,
    lifecycle,
    migrations,
    recovery,
    heartbeats,
    instanceId,
    proto: new ProtoJson(),
    streams: new EventStreams(),
    limits: {
      bodyLimitBytes: 1024 * 1024,
      rateLimitPerSecond: 1000,
      authFailuresPerSecond: 20,
      ...parts.limits,
    },
  };
}

/** Where the registry and the tokens file are, from the options (defaults in the data folder). */
export function resolveGatewayPaths(config: Pick<GatewayOptions, "dataDir" | "registryUrl" | "tokensFile">) {
  const dataDir = resolve(config.dataDir);
  const tokensFile = config.tokensFile
    ? isAbsolute(config.tokensFile)
      ? config.tokensFile
      : resolve(config.tokensFile)
    : join(dataDir, "tokens.json");
  const registryUrl = config.registryUrl || `sqlite://${join(dataDir, "registry.db")}`;
  return { dataDir, tokensFile, registryUrl };
}

export interface RunningGateway {
  app: FastifyInstance;
  services: GatewayServices;
  /** e.g. "http://127.0.0.1:8080" */
  url: string;
  close(): Promise<void>;
}

/**
 * The gateway as its entry point runs it: opens the registry (SQLite in the data folder unless
 * an etcd URL is configured) and the tokens file (creating it with one admin token on first
 * start, handed to `onAdminToken` once), registers the default host from config, and listens.
 */
export async function startGateway(
  config: GatewayOptions,
  log: Logger,
  hooks: { onAdminToken?: (token: string) => void } = {},
): Promise<RunningGateway> {
  const paths = resolveGatewayPaths(config);
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey))
    throw new Error("HTTPS needs both --tls-cert and --tls-key");
  const https =
    config.tlsCert && config.tlsKey
      ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
      : undefined;
  const tokens = AccessTokens.open(paths.tokensFile, {
    bootstrapAdmin: (token, entry) => {
      log.info(
        { tokenId: entry.id, tokensFile: paths.tokensFile },
        "first start: created an admin token (hash stored)",
      );
      hooks.onAdminToken?.(token);
    },
  });
  // Before the registry: an audit file that cannot be opened stops the start with nothing open.
  const audit = AuditLog.open(
    config.auditLog === "stderr" ? "stderr" : resolve(config.auditLog || join(paths.dataDir, "audit.log")),
  );
  const store = openStore(paths.registryUrl);
  const services = buildGatewayServices({
    log,
    audit,
    store,
    tokens,
    credentials: clientCredentials({
      ca: config.serviceTlsCa,
      cert: config.serviceTlsCert,
      key: config.serviceTlsKey,
    }),
    rpcTimeoutMs: config.rpcTimeoutMs,
    operationTimeoutMs: config.operationTimeoutMs,
    limits: {
      bodyLimitBytes: config.bodyLimitBytes,
      rateLimitPerSecond: config.rateLimitPerSecond,
      authFailuresPerSecond: config.authFailureRateLimitPerSecond,
    },
    fleet: {
      hostLeaseMs: config.hostLeaseMs,
      hostProbeMs: config.hostProbeMs,
      replicaLeaseMs: config.replicaLeaseMs,
      reconcileMs: config.reconcileMs,
      orphanGraceMs: config.orphanGraceMs,
    },
  });
  // Expired Idempotency-Key answers are deleted hourly, so the registry does not grow for ever.
  const sweeper = setInterval(() => {
    sweepIdempotencyKeys(store).catch((error: unknown) =>
      log.warn({ err: error }, "could not sweep expired idempotency keys"),
    );
  }, IDEMPOTENCY_SWEEP_MS).unref();
  const close = async () => {
    clearInterval(sweeper);
    await app?.close();
    await services.runner.drain();
    await services.recovery.stop();
    await services.health.stop();
    await services.reconciler.stop();
    services.connections.close();
    await store.close();
    await audit.close();
  };
  let app: FastifyInstance | undefined;
  try {
    if (config.interruptAddress && config.iommuAddress && config.migrationAddress) {
      await services.hosts.ensureFromConfig({
        name: config.defaultHostName,
        addresses: {
          interruptController: config.interruptAddress,
          iommu: config.iommuAddress,
          migration: config.migrationAddress,
        },
      });
    }
    await services.recovery.start();
    services.health.start();
    services.reconciler.start();
    app = await buildApp(services, https);
    const separator = config.address.lastIndexOf(":");
    await app.listen({
      host: config.address.slice(0, separator).replace(/^\[|\]$/g, ""),
      port: Number(config.address.slice(separator + 1)),
    });
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  const bound = app.server.address();
  const where =
    typeof bound === "object" && bound
      ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : String(bound);
  return { app, services, url: `${https ? "https" : "http"}://${where}`, close };
}
