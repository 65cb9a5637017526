import type { FastifyBaseLogger, LogLevel } from "fastify";

/**
 * The log level of a route that probes call every few seconds (health, readiness, metrics
 * scrapes): their request lines appear only when the gateway logs at debug or finer. A route's
 * level can only raise its "request completed" line (an info line, OneLinePerRequest) to it, not move it to
 * debug, so below debug the route logs warnings and errors only.
 */
export function probeLogLevel(log: FastifyBaseLogger): LogLevel {
  return log.level === "trace" ? "trace" : log.level === "debug" ? "debug" : "warn";
}
