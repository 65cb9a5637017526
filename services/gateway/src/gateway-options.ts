import {
  option,
  type ConfigOf,
  dataDirOption,
  logLevelOption,
  shutdownGraceOption,
} from "@vplane/service-kit";

/**
 * The gateway's options (flag, environment variable, default). Paths that are empty by default
 * resolve inside the data folder (see resolveGatewayPaths).
 */
export const gatewayOptionsSpec = {
  address: option.listenAddress({
    env: "VPLANE_GATEWAY_ADDR",
    flag: "addr",
    doc: "HTTP listen address, host:port",
    default: "127.0.0.1:8080",
  }),
  logLevel: logLevelOption(),
  shutdownGraceMs: shutdownGraceOption("ms in-flight requests get to finish on SIGTERM"),
  dataDir: dataDirOption("data folder: the embedded registry and the tokens file live here unless set apart"),
  registryUrl: option.string({
    env: "VPLANE_REGISTRY_URL",
    flag: "registry-url",
    doc: "registry store URL: sqlite:///abs/path.db or etcd://host:2379[,host:port]/prefix; unset: sqlite in the data folder",
    default: "",
  }),
  tokensFile: option.string({
    env: "VPLANE_TOKENS_FILE",
    flag: "tokens-file",
    doc: "JSON file of hashed bearer tokens (tenant, role); unset: tokens.json in the data folder",
    default: "",
  }),
  auditLog: option.string({
    env: "VPLANE_GATEWAY_AUDIT_LOG",
    flag: "audit-log",
    doc: "file the audit trail is appended to (one JSON line per state-changing call), or stderr; unset: audit.log in the data folder",
    default: "",
  }),
  tlsCert: option.string({
    env: "VPLANE_GATEWAY_TLS_CERT",
    flag: "tls-cert",
    doc: "PEM certificate path for HTTPS; with --tls-key enables TLS on the REST API",
    default: "",
  }),
  tlsKey: option.string({
    env: "VPLANE_GATEWAY_TLS_KEY",
    flag: "tls-key",
    doc: "PEM key path for HTTPS",
    default: "",
  }),
  serviceTlsCa: option.string({
    env: "VPLANE_SERVICE_TLS_CA",
    flag: "service-tls-ca",
    doc: "PEM CA path the host services' certificates chain to; set: gRPC to the services uses TLS",
    default: "",
  }),
  serviceTlsCert: option.string({
    env: "VPLANE_SERVICE_TLS_CERT",
    flag: "service-tls-cert",
    doc: "PEM client certificate path presented to the services (mutual TLS)",
    default: "",
  }),
  serviceTlsKey: option.string({
    env: "VPLANE_SERVICE_TLS_KEY",
    flag: "service-tls-key",
    doc: "PEM client key path for mutual TLS to the services",
    default: "",
  }),
  defaultHostName: option.string({
    env: "VPLANE_DEFAULT_HOST",
    flag: "default-host",
    doc: "name of the host registered from config when VPLANE_INTERRUPT_ADDR/IOMMU/MIGRATION are set",
    default: "local",
  }),
  interruptAddress: option.string({
    env: "VPLANE_INTERRUPT_ADDR",
    flag: "interrupt-addr",
    doc: "interrupt-controller gRPC address of the default host (unset: no default host)",
    default: "",
  }),
  iommuAddress: option.string({
    env: "VPLANE_IOMMU_ADDR",
    flag: "iommu-addr",
    doc: "iommu gRPC address of the default host",
    default: "",
  }),
  migrationAddress: option.string({
    env: "VPLANE_MIGRATION_ADDR",
    flag: "migration-addr",
    doc: "migration gRPC address of the default host",
    default: "",
  }),
  bodyLimitBytes: option.integer({
    env: "VPLANE_GATEWAY_BODY_LIMIT_BYTES",
    flag: "body-limit-bytes",
    doc: "largest request body in bytes (fastify bodyLimit); larger bodies answer 413",
    default: 1024 * 1024,
    min: 1024,
    max: 64 * 1024 * 1024,
  }),
  rateLimitPerSecond: option.integer({
    env: "VPLANE_GATEWAY_RATE_LIMIT",
    flag: "rate-limit",
    doc: "requests per second per caller (token, else client address); over it answers 429; 0 disables",
    default: 1000,
    min: 0,
    max: 1_000_000,
  }),
  rpcTimeoutMs: option.integer({
    env: "VPLANE_GATEWAY_RPC_TIMEOUT_MS",
    flag: "rpc-timeout-ms",
    doc: "deadline of each gRPC call to a host service, ms",
    default: 10_000,
    min: 100,
    max: 600_000,
  }),
  operationTimeoutMs: option.integer({
    env: "VPLANE_GATEWAY_OPERATION_TIMEOUT_MS",
    flag: "operation-timeout-ms",
    doc: "total time a long-running operation may take before it is aborted and rolled back, ms",
    default: 300_000,
    min: 1_000,
    max: 86_400_000,
  }),
  hostLeaseMs: option.integer({
    env: "VPLANE_GATEWAY_HOST_LEASE_MS",
    flag: "host-lease-ms",
    doc: "a host that joined by itself and sent no heartbeat for this long gets no new VMs; its agent renews at a third of it, ms",
    default: 15_000,
    min: 1_000,
    max: 3_600_000,
  }),
  hostProbeMs: option.integer({
    env: "VPLANE_GATEWAY_HOST_PROBE_MS",
    flag: "host-probe-ms",
    doc: "how often this replica asks every host's services for their health (placement skips hosts not SERVING), ms",
    default: 2_000,
    min: 100,
    max: 600_000,
  }),
  replicaLeaseMs: option.integer({
    env: "VPLANE_GATEWAY_REPLICA_LEASE_MS",
    flag: "replica-lease-ms",
    doc: "a replica whose heartbeat is older than this has stopped: others adopt or end its operations; it beats every sixth of it, ms",
    default: 30_000,
    min: 1_000,
    max: 3_600_000,
  }),
  reconcileMs: option.integer({
    env: "VPLANE_GATEWAY_RECONCILE_MS",
    flag: "reconcile-ms",
    doc: "how often one replica compares every host's devices with the registry (orphans removed, vanished devices marked); 0: never, ms",
    default: 30_000,
    min: 0,
    max: 86_400_000,
  }),
  orphanGraceMs: option.integer({
    env: "VPLANE_GATEWAY_ORPHAN_GRACE_MS",
    flag: "orphan-grace-ms",
    doc: "how long a device no VM owns (or a VM whose devices are gone) must stay so before the reconciler acts, ms",
    default: 60_000,
    min: 0,
    max: 86_400_000,
  }),
};

export type GatewayOptions = ConfigOf<typeof gatewayOptionsSpec>;
