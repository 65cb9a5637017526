export type { CallContext } from "./call-context.js";
export { backendKindOf } from "./backend-kind.js";
export { buildCapabilities } from "./capabilities.js";
export {
  CallHandlers,
  type BidiStreamHandler,
  type ClientStreamHandler,
  type ServerStreamHandler,
  type UnaryHandler,
} from "./call-handlers.js";
export {
  DEFAULT_CHANNEL_LIMITS,
  clientChannelOptions,
  serverChannelOptions,
  type ChannelLimits,
} from "./channel-options.js";
export {
  ConfigError,
  describeConfig,
  loadConfig,
  type ConfigOf,
  type ConfigSource,
  type ConfigSpec,
  type OptionSpec,
} from "./config.js";
export { clientCredentials, serverCredentials, type TlsFiles } from "./credentials.js";
export { MAX_SLEEP_MS, echoService } from "./echo-service.js";
export {
  ERROR_DOMAIN,
  errorDetailOf,
  fromServiceError,
  toRpcStatus,
  toStatusObject,
} from "./error-details.js";
export { EventStreamMetrics } from "./event-stream-metrics.js";
export { HealthClient, type HealthAnswer } from "./health-client.js";
export { HealthService, type ServingStatus } from "./health-service.js";
export { GrpcServer, serviceNameOf, type ServiceRegistration, type ShutdownOutcome } from "./grpc-server.js";
export {
  StateRefused,
  badSection,
  decodeState,
  deviceSection,
  inSection,
  refuseState,
  refusedAsPayload,
} from "./device-section.js";
export {
  deviceStateService,
  pageRanges,
  type DeviceStateHandlers,
  type FinishedImport,
  type ImportStream,
  type StopAndCopyResult,
} from "./device-state-service.js";
export { wallClockUs } from "./wall-clock.js";
export { afterWrites } from "./after-writes.js";
export {
  deviceStateHandlers,
  devicesQuiesced,
  preCopyNotPrepared,
  type BackendPreCopy,
  type FinishedDevices,
  type PreCopyDevices,
  type VmDevices,
} from "./device-state-handlers.js";
export {
  DEVICE_STATE_CHUNK_BYTES,
  DeviceStateAssembler,
  MAX_DEVICE_STATE_STREAM_BYTES,
  chunkDeviceState,
} from "./device-state-chunks.js";
export { IdempotentDeletes } from "./idempotent-deletes.js";
export { SequencedRing, type RingPlace } from "./sequenced-ring.js";
export { configStore } from "./config-store.js";
export { handoffEventLog, restoreDevices, type DeviceRegistry } from "./restored-devices.js";
export { DEPARTED_RETENTION_MS, MigrationSeals } from "./migration-seals.js";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, listPage, type PageRequest } from "./list-page.js";
export {
  ANSWERS_PER_SCOPE,
  REQUEST_RETENTION_MS,
  RequestLedger,
  type Applied,
  type DurableWrites,
  type LedgerCall,
} from "./request-ledger.js";
export { createLogger, type Logger } from "./logger.js";
export { MetricsListener } from "./metrics-listener.js";
export { dataDirOption, logLevelOption, option, shutdownGraceOption } from "./options.js";
export { RpcServerMetrics, type RpcType } from "./rpc-server-metrics.js";
export { serverOptionsSpec, type ServerOptions } from "./server-options.js";
export {
  EXIT,
  configSpecOf,
  loadConfigOrExit,
  runService,
  startService,
  type RunningService,
  type ServiceDescription,
  type ServiceStartContext,
  type StartedService,
} from "./service-runner.js";
export {
  LATENCY_BUCKETS_SECONDS,
  ServiceMetrics,
  type Counter,
  type Gauge,
  type Histogram,
} from "./service-metrics.js";
export { statusCodeOf, statusNameOf, type StatusCodeName } from "./status-code.js";
export { unaryCall, type UnaryCallOptions } from "./unary-call.js";
export { UnrestoredResources } from "./unrestored-resources.js";
export { ClientStreamCall, serverStreamCall } from "./stream-calls.js";
export { VPLANE_VERSION } from "./version.js";
export { VplaneError, isDeviceFault, toVplaneError, type VplaneErrorFields } from "./vplane-error.js";
export { missingField, requiredField } from "./required-field.js";
export {
  guestMemorySpec,
  importedGuestMemory,
  openGuestMemory,
  type GuestMemoryLimits,
  type GuestMemorySpec,
} from "./guest-memory-binding.js";
