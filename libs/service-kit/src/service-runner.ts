import type { Logger } from "./logger.js";
import { CallHandlers } from "./call-handlers.js";
import { ConfigError, describeConfig, loadConfig, type ConfigOf, type ConfigSpec } from "./config.js";
import { serverCredentials } from "./credentials.js";
import { GrpcServer, type ServiceRegistration, type ShutdownOutcome } from "./grpc-server.js";
import { createLogger } from "./logger.js";
import { MetricsListener } from "./metrics-listener.js";
import { RpcServerMetrics } from "./rpc-server-metrics.js";
import { ServiceMetrics } from "./service-metrics.js";
import { serverOptionsSpec, type ServerOptions } from "./server-options.js";

/** Exit codes of a service process. */
export const EXIT = {
  /** Drained and stopped within the grace period. */
  GRACEFUL: 0,
  /** Could not start (port in use, unreadable file, ...). */
  START_FAILED: 1,
  /** Bad configuration; the message says which option. */
  BAD_CONFIG: 2,
  /** The grace period ran out; in-flight calls were cancelled. */
  FORCED: 3,
} as const;

export interface ServiceStartContext<S extends ConfigSpec> {
  config: ServerOptions & ConfigOf<S>;
  log: Logger;
  handlers: CallHandlers;
  /** Where the service declares its own metrics (the per-RPC ones are counted for it). */
  metrics: ServiceMetrics;
}

export interface StartedService {
  services: ServiceRegistration[];
  /** Releases what the service holds (databases, files) after the server stopped. */
  close?: () => Promise<void> | void;
}

export interface ServiceDescription<S extends ConfigSpec> {
  /** e.g. "interrupt-controller" */
  name: string;
  /** Names the service in environment variables: VPLANE_<envPrefix>_ADDR. */
  envPrefix: string;
  defaultPort: number;
  /** Options of this service beyond the common ones. */
  options: S;
  start(context: ServiceStartContext<S>): Promise<StartedService>;
}

export interface RunningService {
  server: GrpcServer;
  log: Logger;
  metrics: ServiceMetrics;
  /** host:port of the /metrics listener, when --metrics-addr asked for one. */
  metricsAddress: string | undefined;
  /** Drains (up to the configured grace), then releases the service. */
  stop(graceMs?: number): Promise<ShutdownOutcome>;
}

export function configSpecOf<S extends ConfigSpec>(description: ServiceDescription<S>) {
  return { ...serverOptionsSpec(description.envPrefix, description.defaultPort), ...description.options };
}

/** Starts a service in this process (the entry point, the embedded stack and tests use it). */
export async function startService<S extends ConfigSpec>(
  description: ServiceDescription<S>,
  config: ServerOptions & ConfigOf<S>,
  log: Logger = createLogger({ name: description.name, level: config.logLevel }),
): Promise<RunningService> {
  const metrics = new ServiceMetrics();
  const handlers = new CallHandlers(log, new RpcServerMetrics(metrics));
  const started = await description.start({ config, log, handlers, metrics });
  let server: GrpcServer;
  let listener: MetricsListener | undefined;
  try {
    if (config.metricsAddress) listener = await MetricsListener.listen(config.metricsAddress, metrics, log);
    server = await GrpcServer.start({
      address: config.address,
      credentials: serverCredentials({ cert: config.tlsCert, key: config.tlsKey, ca: config.tlsClientCa }),
      limits: config,
      services: started.services,
      log,
      onDrain: () => handlers.drainStreams(),
    });
  } catch (error) {
    await listener?.close();
    await started.close?.();
    throw error;
  }
  server.markServing();
  return {
    server,
    log,
    metrics,
    metricsAddress: listener?.address,
    async stop(graceMs = config.shutdownGraceMs) {
      const outcome = await server.shutdown(graceMs);
      await started.close?.();
      await listener?.close();
      return outcome;
    },
  };
}

/**
 * A process's configuration from argv and the environment: prints the options and returns
 * undefined on --help; on bad values prints every problem and exits BAD_CONFIG.
 */
export function loadConfigOrExit<S extends ConfigSpec>(
  name: string,
  spec: S,
  argv: readonly string[],
): ConfigOf<S> | undefined {
  if (argv.includes("--help")) {
    process.stdout.write(`${name}: options (flag, environment variable, meaning)\n${describeConfig(spec)}\n`);
    return undefined;
  }
  try {
    return loadConfig(spec, { argv, env: process.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(EXIT.BAD_CONFIG);
  }
}

/**
 * The whole life of a service process: configuration (exit 2 with a readable message on bad
 * values), start (exit 1 if it cannot), one line saying where it listens, then SIGTERM/SIGINT →
 * graceful shutdown (exit 0) or forced after the grace period (exit 3). A second signal forces.
 */
export async function runService<S extends ConfigSpec>(
  description: ServiceDescription<S>,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  const config: (ServerOptions & ConfigOf<S>) | undefined = loadConfigOrExit<ConfigSpec>(
    description.name,
    configSpecOf(description),
    argv,
  ) as (ServerOptions & ConfigOf<S>) | undefined;
  if (!config) return;
  const log = createLogger({ name: description.name, level: config.logLevel });
  let running: RunningService;
  try {
    running = await startService(description, config, log);
  } catch (error) {
    log.fatal({ err: error }, "could not start");
    process.stderr.write(`${description.name}: could not start: ${(error as Error).message}\n`);
    log.flush();
    process.exit(EXIT.START_FAILED);
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals | "disconnect") => {
    signals += 1;
    log.info({ signal }, "signal received");
    const grace = signals > 1 ? 0 : config.shutdownGraceMs;
    void running.stop(grace).then((outcome) => {
      log.info({ outcome }, "stopped");
      log.flush();
      process.exit(outcome === "graceful" ? EXIT.GRACEFUL : EXIT.FORCED);
    });
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Started over an IPC channel by a supervisor (npm start's scripts/start.mjs): the channel
  // closing means the supervisor is gone, even killed outright; stop as on SIGTERM, not outlive it.
  if (process.channel) process.once("disconnect", () => onSignal("disconnect"));
  // Announced only once the signal handlers are in place: whoever waits for this line may stop us.
  const metricsAddress = running.metricsAddress;
  log.info(
    { address: running.server.address, ...(metricsAddress ? { metricsAddress } : {}) },
    `${description.name} listening on ${running.server.address}` +
      (metricsAddress ? `, metrics on http://${metricsAddress}/metrics` : ""),
  );
}
