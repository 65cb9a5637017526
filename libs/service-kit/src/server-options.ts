import type { ConfigOf } from "./config.js";
import { logLevelOption, option, shutdownGraceOption } from "./options.js";
import { DEFAULT_CHANNEL_LIMITS } from "./channel-options.js";

/**
 * The options every gRPC service takes. `prefix` names the service in variables
 * (VPLANE_INTERRUPT_ADDR ...). Defaults listen on loopback only (DESIGN.md: nothing listens beyond
 * loopback unless configured).
 */
export function serverOptionsSpec(prefix: string, defaultPort: number) {
  return {
    address: option.listenAddress({
      env: `VPLANE_${prefix}_ADDR`,
      flag: "addr",
      doc: "gRPC listen address, host:port",
      default: `127.0.0.1:${defaultPort}`,
    }),
    metricsAddress: option.listenAddress({
      env: `VPLANE_${prefix}_METRICS_ADDR`,
      flag: "metrics-addr",
      doc: "Prometheus /metrics HTTP listen address, host:port; unset: no metrics listener",
      default: "",
    }),
    logLevel: logLevelOption(),
    shutdownGraceMs: shutdownGraceOption(
      "ms in-flight calls get to finish on SIGTERM before they are cancelled",
    ),
    maxMessageBytes: option.integer({
      env: "VPLANE_MAX_MESSAGE_BYTES",
      flag: "max-message-bytes",
      doc: "largest request or response message in bytes (grpc.max_receive_message_length)",
      default: DEFAULT_CHANNEL_LIMITS.maxMessageBytes,
      min: 1024,
      max: 1024 * 1024 * 1024,
    }),
    keepaliveTimeMs: option.integer({
      env: "VPLANE_KEEPALIVE_TIME_MS",
      flag: "keepalive-time-ms",
      doc: "ms between server keepalive pings (grpc.keepalive_time_ms)",
      default: 30_000,
      min: 1_000,
      max: 3_600_000,
    }),
    keepaliveTimeoutMs: option.integer({
      env: "VPLANE_KEEPALIVE_TIMEOUT_MS",
      flag: "keepalive-timeout-ms",
      doc: "ms to wait for a keepalive ack before closing (grpc.keepalive_timeout_ms)",
      default: 10_000,
      min: 1_000,
      max: 600_000,
    }),
    tlsCert: option.string({
      env: "VPLANE_TLS_CERT",
      flag: "tls-cert",
      doc: "PEM server certificate path; with --tls-key enables TLS",
      default: "",
    }),
    tlsKey: option.string({
      env: "VPLANE_TLS_KEY",
      flag: "tls-key",
      doc: "PEM server key path",
      default: "",
    }),
    tlsClientCa: option.string({
      env: "VPLANE_TLS_CLIENT_CA",
      flag: "tls-client-ca",
      doc: "PEM CA path; when set, clients must present a certificate it signed (mutual TLS)",
      default: "",
    }),
  };
}

export type ServerOptions = ConfigOf<ReturnType<typeof serverOptionsSpec>>;
