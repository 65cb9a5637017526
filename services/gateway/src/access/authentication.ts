import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { VplaneError, type Logger } from "@vplane/service-kit";
import type { AccessTokens, Principal, Role } from "./access-tokens.js";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * Who the request's bearer token verifies as (callerIdentity, on every request); undefined
     * without a token or with one that does not verify.
     */
    caller: Principal | undefined;
    /** The verified caller of a /v1 route (set by the authentication hook, which requires one). */
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** The least role that may call the route; default viewer for GET/HEAD, operator otherwise. */
    minimumRole?: Role;
  }
}

// A host credential ranks below viewer: it reaches only routes that name "host" as their least
// role (a host registering itself), and those check that the token speaks for that host.
const RANK: Record<Role, number> = { host: -1, viewer: 0, operator: 1, admin: 2 };

function minimumRoleOf(request: FastifyRequest): Role {
  const configured = request.routeOptions.config.minimumRole;
  if (configured) return configured;
  return request.method === "GET" || request.method === "HEAD" ? "viewer" : "operator";
}

/** True when the request presented credentials that did not verify (a failed authentication). */
export function failedAuthentication(request: FastifyRequest): boolean {
  return request.caller === undefined && request.headers.authorization !== undefined;
}

/**
 * Verifies the bearer token of every request, first of all (the rate limit keys verified
 * requests on their principal, so it must know before it counts). Verified Authorization values
 * are cached by AccessTokens: a map lookup per request.
 */
export const callerIdentity = fp(
  (app: FastifyInstance, options: { tokens: AccessTokens }) => {
    app.decorateRequest("caller", undefined);
    // Synchronous (done-callback) like every per-request hook here: no promise per request.
    app.addHook("onRequest", (request, _reply, done) => {
      request.caller = options.tokens.authenticate(request.headers.authorization);
      done();
    });
  },
  { name: "vplane-caller-identity" },
);

/**
 * Bearer-token authentication and role checks for the routes of the scope it is registered in:
 * 401 UNAUTHENTICATED without a valid token, 403 PERMISSION_DENIED when the role is too low.
 * Tenancy is not checked here: records are keyed by tenant, so another tenant's VM is not found.
 */
export const authentication = fp(
  (app: FastifyInstance) => {
    app.decorateRequest("principal", undefined as unknown as Principal);
    app.addHook("onRequest", (request, reply, done) => {
      const principal = request.caller;
      if (!principal) {
        void reply.header("www-authenticate", 'Bearer realm="vplane"');
        return done(
          new VplaneError({
            code: "UNAUTHENTICATED",
            reason: request.headers.authorization ? "TOKEN_INVALID" : "TOKEN_MISSING",
            message: "a valid bearer token is required (Authorization: Bearer vpl_...)",
          }),
        );
      }
      const needed = minimumRoleOf(request);
      if (RANK[principal.role] < RANK[needed]) {
        return done(
          new VplaneError({
            code: "PERMISSION_DENIED",
            reason: "ROLE_NOT_ALLOWED",
            message: `this call needs the ${needed} role; the token has ${principal.role}`,
          }),
        );
      }
      request.principal = principal;
      // The request's logger is its own (fastify's per-request child): the caller is added to
      // its bindings instead of making a second child (Object.create and level methods rebuilt,
      // per request: ~2% of a busy replica's CPU). The "request completed" line names it too.
      if ((request.log as Logger).isLevelEnabled("info")) {
        (request.log as Logger).setBindings({ tenant: principal.tenant, tokenId: principal.tokenId });
      }
      done();
    });
  },
  { name: "vplane-authentication", dependencies: ["vplane-caller-identity"] },
);
