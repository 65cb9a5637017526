import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { VplaneError } from "@vplane/service-kit";
import { failedAuthentication } from "./authentication.js";

const WINDOW_MS = 1000;

export interface RateLimits {
  /** Requests per second of one verified principal, or of one client address without a token. */
  perSecond: number;
  /** Failed authentications per second of one client address, beside its perSecond budget. */
  authFailuresPerSecond: number;
}

/**
 * At most `perSecond` requests per caller in each one-second window, where the caller is the
 * verified principal (its token id) when the bearer token verifies, else the client address: a
 * token id is no secret (it is part of every token and logged), so a request that merely names
 * one must not spend that token's budget. A request whose token does not verify also counts
 * against the address's failed-authentication budget (`authFailuresPerSecond`), so guessing is
 * slowed without touching anyone's verified budget.
 *
 * A fixed window shared by all callers, so the counts are simply dropped when it ends: memory
 * is bounded by one window's callers. Every answer carries x-ratelimit-limit, -remaining and
 * -reset (seconds) of the budget that applied; past it, 429 RESOURCE_EXHAUSTED (RATE_LIMITED, or
 * AUTHENTICATION_FAILURES_RATE_LIMITED) with retry-after. A synchronous hook: this runs on
 * every request, and @fastify/rate-limit's asynchronous store cost a sixth of a cached VM read
 * (bench: gateway). Registered after callerIdentity, which verifies the token.
 */
export const rateLimit = fp(
  (app: FastifyInstance, options: RateLimits & { now?: () => number }) => {
    const now = options.now ?? Date.now;
    let counts = new Map<string, number>();
    let windowEnd = 0;
    /** Counts one request in `key`'s bucket; the error past `limit`, with the headers set. */
    const spend = (reply: FastifyReply, at: number, key: string, limit: number, reason: string) => {
      const count = (counts.get(key) ?? 0) + 1;
      counts.set(key, count);
      const reset = String(Math.ceil((windowEnd - at) / 1000));
      void reply
        .header("x-ratelimit-limit", String(limit))
        .header("x-ratelimit-remaining", String(Math.max(0, limit - count)))
        .header("x-ratelimit-reset", reset);
      if (count <= limit) return undefined;
      void reply.header("retry-after", reset);
      return new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason,
        message: `more than ${limit} ${reason === "RATE_LIMITED" ? "requests" : "failed authentications"} per second; retry after ${reset} s`,
      });
    };
    app.addHook(
      "onRequest",
      (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
        const at = now();
        if (at >= windowEnd) {
          counts = new Map();
          windowEnd = at - (at % WINDOW_MS) + WINDOW_MS;
        }
        if (request.caller) {
          return done(spend(reply, at, `token:${request.caller.tokenId}`, options.perSecond, "RATE_LIMITED"));
        }
        const byAddress = spend(reply, at, `ip:${request.ip}`, options.perSecond, "RATE_LIMITED");
        if (byAddress || !failedAuthentication(request)) return done(byAddress);
        done(
          spend(
            reply,
            at,
            `auth-failures:${request.ip}`,
            options.authFailuresPerSecond,
            "AUTHENTICATION_FAILURES_RATE_LIMITED",
          ),
        );
      },
    );
  },
  { name: "vplane-rate-limit", dependencies: ["vplane-caller-identity"] },
);
