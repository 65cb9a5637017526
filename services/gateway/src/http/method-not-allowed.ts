import type { FastifyInstance } from "fastify";
import { VplaneError } from "@vplane/service-kit";

/** The methods the gateway has routes with (fastify adds HEAD to every GET). */
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;

/**
 * The methods `url`'s path has routes for, looked up in fastify's own router (findRoute matches
 * a concrete path as a request would be). fastify answers an unrouted method 404 by design
 * (fastify#917); HTTP wants 405 with Allow (RFC 9110 15.5.6).
 */
export function allowedMethods(app: FastifyInstance, url: string): string[] {
  const path = url.split("?", 1)[0] ?? url;
  return METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
}

/** A known path asked with a method it does not have: UNIMPLEMENTED, as grpc-gateway answers its 405s. */
export function methodNotAllowed(method: string, path: string, allowed: readonly string[]): VplaneError {
  return new VplaneError({
    code: "UNIMPLEMENTED",
    reason: "METHOD_NOT_ALLOWED",
    message: `${path} has no ${method}; it takes ${allowed.join(", ")}`,
  });
}
