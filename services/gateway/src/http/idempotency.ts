import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { StoreConflictError, listAll, type Store, type TransactionOp } from "@vplane/store";
import { VplaneError } from "@vplane/service-kit";
import { registryKeys } from "../registry/registry-keys.js";
import { putOp, readRecord, type Versioned } from "../registry/typed-entry.js";
import type { ReplicaHeartbeats } from "../operations/replica-heartbeats.js";

/**
 * How long a request may hold its key before a retry may take over even though its replica still
 * beats (its answer was lost with the write that should have recorded it).
 */
const PENDING_LEASE_MS = 60_000;
/** How long a retry waits for the first request with the same key to finish, by default. */
const WAIT_FOR_FIRST_MS = 10_000;
/** How often a waiting retry looks whether the replica holding the key has stopped. */
const OWNER_CHECK_MS = 1_000;
/** How long an answer is kept for retries (Stripe's 24 hours); then the key may be used afresh. */
export const IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

type IdempotencyRecord =
  // owner: the gateway replica running the request (absent in records of older gateways).
  | { state: "pending"; fingerprint: string; leaseUntil: number; owner?: string }
  | { state: "done"; fingerprint: string; statusCode: number; body: unknown; createTime: string };

/**
 * The key a request holds while it runs: its final answer is written under CAS on `revision`, the
 * pending record it claimed, or "absent" when it claims the key with its answer (see
 * runIdempotentEffect).
 */
export interface IdempotencyReservation {
  /** The write that records the answer; join it to the transaction that makes the effect durable. */
  commitOp(statusCode: number, body: unknown): TransactionOp;
  /** Set by the route once commitOp's transaction succeeded; else the plugin stores the reply. */
  committed: boolean;
}

interface HeldKey extends IdempotencyReservation {
  key: string;
  revision: number | "absent";
  fingerprint: string;
  /**
   * After the effect of a key claimed with its answer failed: the key as a first try that found it
   * taken sees it (replayed, waited for, taken over). "free": nobody holds it, the effect failed
   * on its own; "replayed": the stored answer is sent; "claimed": the key is now held (pending),
   * run the effect again.
   */
  settle(reply: FastifyReply): Promise<"free" | "replayed" | "claimed">;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Present on a POST with an Idempotency-Key that runs for the first time. */
    idempotency: HeldKey | undefined;
  }
  interface FastifyContextConfig {
    /**
     * The route writes its answer (commitOp) in the transaction that makes its effect durable, and
     * writes nothing before it: its key is claimed by that transaction, not before it runs.
     */
    answerInEffect?: boolean;
  }
}

/**
 * Runs the effect of a route with `answerInEffect`. Its transaction claims the key (create-only)
 * with the answer; when the effect fails and the key turns out taken (a request with the same key
 * got there first, or this one's own transaction applied and its answer was lost), the request
 * ends as a retry would: the stored answer is sent (undefined returned), or it waits, or takes a
 * key whose request is over, and runs the effect again.
 */
export async function runIdempotentEffect<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  effect: () => Promise<T>,
): Promise<T | undefined> {
  for (;;) {
    try {
      return await effect();
    } catch (error) {
      const held = request.idempotency;
      if (held?.revision !== "absent") throw error;
      const settled = await held.settle(reply);
      if (settled === "replayed") return undefined;
      if (settled === "free") throw error;
    }
  }
}

function fingerprintOf(request: FastifyRequest): string {
  return createHash("sha256")
    .update(`${request.method} ${request.url}\n`)
    .update(JSON.stringify(request.body ?? null))
    .digest("hex");
}

function isExpired(record: IdempotencyRecord, now: number): boolean {
  return record.state === "done" && Date.parse(record.createTime) + IDEMPOTENCY_RETENTION_MS <= now;
}

/** Deletes the answers kept longer than IDEMPOTENCY_RETENTION_MS (bounded registry); how many. */
export async function sweepIdempotencyKeys(store: Store, now = Date.now()): Promise<number> {
  let swept = 0;
  const expired = (await listAll(store, registryKeys.allIdempotency())).filter((entry) =>
    isExpired(entry.value as unknown as IdempotencyRecord, now),
  );
  for (const entry of expired) {
    // Under CAS: a key reused since it was listed is left alone.
    try {
      if (await store.delete(entry.key, { ifRevision: entry.revision })) swept++;
    } catch (error) {
      if (!(error instanceof StoreConflictError)) throw error;
    }
  }
  return swept;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Idempotency-Key on POST (as in Stripe's API and the IETF draft): the first request with a key
 * runs and its answer is stored in the registry under the tenant; a retry with the same key and
 * the same request gets that answer again (header Idempotent-Replayed: true), never a second
 * effect; the same key with a different request is refused. A retry that arrives while the first
 * still runs waits for it (up to `waitMs`), then is refused with 409 and a Retry-After. 5xx answers
 * are not stored, so the retry runs again.
 *
 * The key is held in the registry under the name of the replica running the request. A retry
 * takes the key over at once when that request is known to be over without an answer: its
 * replica stopped (its heartbeat lapsed, as OperationRecovery judges it: ReplicaHeartbeats), or
 * it is this replica and the request no longer runs here. Taking over is safe even if the first
 * request were still alive: its answer is written under compare-and-swap on the revision it
 * reserved, in the same transaction as its effect (vm-routes), so a request whose key was taken
 * over changes nothing. A request that committed its effect has its answer stored already, so a
 * retry gets that answer (the operation, which OperationRecovery takes care of) whatever became
 * of its replica.
 */
export const idempotency = fp(
  (
    app: FastifyInstance,
    options: {
      store: Store;
      /** This replica's name in heartbeats. */
      instanceId: string;
      heartbeats: Pick<ReplicaHeartbeats, "lapsesAt">;
      waitMs?: number;
    },
  ) => {
    const { store, instanceId, heartbeats } = options;
    const waitMs = options.waitMs ?? WAIT_FOR_FIRST_MS;
    /** Keys (store keys) of the requests running on this replica. */
    const running = new Set<string>();
    app.decorateRequest("idempotency", undefined);

    // Only POST routes get the hooks: reads pay nothing for idempotency.
    app.addHook("onRoute", (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      if (!methods.includes("POST")) return;
      const own = [reserve];
      route.preHandler = route.preHandler
        ? ([...([] as unknown[]).concat(route.preHandler), ...own] as never)
        : own;
      route.onSend = route.onSend ? ([...([] as unknown[]).concat(route.onSend), record] as never) : [record];
    });

    /**
     * When the request holding `pending` can no longer answer (ms since the epoch): at once when it
     * is known to be over, else when its replica's heartbeat lapses unless it beats again, at the
     * latest at the end of its lease.
     */
    async function overAt(storeKey: string, pending: Extract<IdempotencyRecord, { state: "pending" }>) {
      if (pending.owner === undefined) return pending.leaseUntil;
      if (pending.owner === instanceId) return running.has(storeKey) ? pending.leaseUntil : 0;
      return Math.min(await heartbeats.lapsesAt(pending.owner), pending.leaseUntil);
    }

    async function reserve(request: FastifyRequest, reply: FastifyReply) {
      const header = request.headers["idempotency-key"];
      if (header === undefined) return;
      const key = Array.isArray(header) ? header[0]! : header;
      if (!KEY_PATTERN.test(key)) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "BAD_IDEMPOTENCY_KEY",
          message: "Idempotency-Key must be 1-255 printable ASCII characters",
          field: "Idempotency-Key",
        });
      }
      const held = heldKey(
        registryKeys.idempotency(request.principal.tenant, createHash("sha256").update(key).digest("hex")),
        fingerprintOf(request),
      );
      // A route whose first write is its effect with its answer claims the key in that write.
      if (request.routeOptions.config.answerInEffect) request.idempotency = held;
      // Most keys are new: the first try claims the key unread (create-only); a key that is
      // taken fails that claim and is read.
      else if ((await claim(held, reply, "unread")) === "claimed") request.idempotency = held;
      else return reply; // replayed: the handler does not run
    }

    function heldKey(storeKey: string, fingerprint: string): HeldKey {
      const held: HeldKey = {
        key: storeKey,
        revision: "absent",
        fingerprint,
        committed: false,
        commitOp(statusCode, body) {
          const done: IdempotencyRecord = {
            state: "done",
            fingerprint,
            statusCode,
            body,
            createTime: new Date().toISOString(),
          };
          return putOp(storeKey, done, held.revision);
        },
        async settle(reply) {
          const stored = await readRecord<IdempotencyRecord>(store, storeKey);
          return stored ? claim(held, reply, stored) : "free";
        },
      };
      return held;
    }

    /**
     * Holds `held`'s key (a pending record under this replica's name; "claimed"), or answers as
     * the key says: its stored answer sent ("replayed"), or an error thrown (another request's
     * key; its first request still running after `waitMs`). `seen`: the key as just read.
     */
    async function claim(
      held: HeldKey,
      reply: FastifyReply,
      seen: Versioned<IdempotencyRecord> | "unread",
    ): Promise<"replayed" | "claimed"> {
      const storeKey = held.key;
      const waitUntil = Date.now() + waitMs;
      let holder: { revision: number; overAt: number; checkedAt: number } | undefined;
      for (
        let read: Versioned<IdempotencyRecord> | undefined | "unread" = seen;
        ;
        read = await readRecord<IdempotencyRecord>(store, storeKey)
      ) {
        const stored = read === "unread" ? undefined : read;
        // An expired answer is as good as none (its revision still guards the overwrite).
        const existing = stored && !isExpired(stored.value, Date.now()) ? stored : undefined;
        // Answered for the key as it stands: nothing of this request's own to store.
        if (existing) held.committed = true;
        if (existing && existing.value.fingerprint !== held.fingerprint) {
          throw new VplaneError({
            code: "FAILED_PRECONDITION",
            reason: "IDEMPOTENCY_KEY_REUSED",
            message: "this Idempotency-Key was used for a different request",
            field: "Idempotency-Key",
          });
        }
        if (existing?.value.state === "done") {
          void reply
            .code(existing.value.statusCode)
            .header("idempotent-replayed", "true")
            .send(existing.value.body);
          return "replayed";
        }
        if (existing?.value.state === "pending") {
          const now = Date.now();
          // Who holds the key is looked up again for a new holder, and every OWNER_CHECK_MS.
          if (holder?.revision !== existing.revision || now - holder.checkedAt >= OWNER_CHECK_MS)
            holder = {
              revision: existing.revision,
              overAt: await overAt(storeKey, existing.value),
              checkedAt: now,
            };
          if (holder.overAt > now) {
            if (now > waitUntil) {
              void reply.header("retry-after", String(Math.max(1, Math.ceil((holder.overAt - now) / 1000))));
              throw new VplaneError({
                code: "ABORTED",
                reason: "IDEMPOTENT_REQUEST_IN_PROGRESS",
                message:
                  "a request with this Idempotency-Key is still running; retry after Retry-After seconds (by then it has answered, or its gateway replica is known to have stopped and the retry takes over)",
              });
            }
            await sleep(50);
            continue;
          }
          reply.request.log.info(
            { idempotencyKeyOwner: existing.value.owner },
            "taking over an Idempotency-Key whose request is over without an answer",
          );
        }
        const pending: IdempotencyRecord = {
          state: "pending",
          fingerprint: held.fingerprint,
          leaseUntil: Date.now() + PENDING_LEASE_MS,
          owner: instanceId,
        };
        try {
          held.revision = await store.put(storeKey, pending, { ifRevision: stored?.revision ?? "absent" });
          held.committed = false;
          running.add(storeKey);
          return "claimed";
        } catch (error) {
          if (!(error instanceof StoreConflictError)) throw error;
          // Another request with this key got in first: read again (and wait or replay).
        }
      }
    }

    async function record(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
      const held = request.idempotency;
      if (held) running.delete(held.key);
      if (!held || held.committed) return payload;
      held.committed = true;
      try {
        if (reply.statusCode >= 500) {
          // A key claimed with the answer was never written: nothing to release.
          if (held.revision !== "absent") await store.delete(held.key, { ifRevision: held.revision });
        } else {
          const body: unknown =
            typeof payload === "string" && payload.length > 0 ? JSON.parse(payload) : null;
          await store.transaction([held.commitOp(reply.statusCode, body)]);
        }
      } catch (error) {
        request.log.warn({ err: error }, "could not record the idempotent answer");
      }
      return payload;
    }
  },
  { name: "vplane-idempotency" },
);
