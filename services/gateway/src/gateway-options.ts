import { option, type ConfigOf } from "@vplane/service-kit";

/** The gateway's options (flag, environment variable, default). */
export const gatewayOptionsSpec = {
  address: option.listenAddress({
    env: "VPLANE_GATEWAY_ADDR",
    flag: "addr",
    doc: "HTTP listen address, host:port",
    default: "127.0.0.1:8080",
  }),
  logLevel: option.oneOf({
    env: "VPLANE_LOG_LEVEL",
    flag: "log-level",
    doc: "pino log level",
    default: "info",
    values: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const,
  }),
  shutdownGraceMs: option.integer({
    env: "VPLANE_SHUTDOWN_GRACE_MS",
    flag: "shutdown-grace-ms",
    doc: "ms in-flight requests get to finish on SIGTERM",
    default: 10_000,
    min: 0,
    max: 600_000,
  }),
};

export type GatewayOptions = ConfigOf<typeof gatewayOptionsSpec>;
