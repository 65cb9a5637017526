import type { FastifyBaseLogger, LogLevel } from "fastify";

/**
 * The log level of a route that probes call every few seconds (health, readiness, metrics
 * scrapes): their request lines appear only when the gateway logs at debug or finer. A route's
 * level can only raise fastify's "incoming request"/"request completed" lines to it, not move
 * them to debug, so below debug the route logs warnings and errors only.
 */
export function probeLogLevel(log: FastifyBaseLogger): LogLevel {
  return log.level === "trace" ? "trace" : log.level === "debug" ? "debug" : "warn";
}
