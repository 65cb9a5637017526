import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import pino from "pino";

/** The methods that change state: every call with one of them is audited, whatever its outcome. */
const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** One audit line: who did what to which resource, and how it ended. */
export interface AuditRecord {
  requestId: string;
  /** The token that made the call (its id, never the token), or null when none verified. */
  tokenId: string | null;
  role: string | null;
  tenant: string | null;
  method: string;
  /** The request path (no query), e.g. /v1/vms/web-1:migrate. */
  resource: string;
  /** The `name` a create gave in its body, when it gave one. */
  name?: string;
  status: number;
  /** OK for a 2xx answer, else the error's code and reason. */
  outcome: string;
  reason?: string;
  /** The long-running operation the call started, if it started one. */
  operation?: string;
}

/** A file destination (pino's sonic-boom). */
type FileDestination = ReturnType<typeof pino.destination>;
/** Where audit lines are written: a stream, or a file destination. */
type AuditDestination = { write(line: string): unknown } | FileDestination;

/**
 * The audit trail: one JSON line per state-changing REST call with its time, on a stream of its
 * own (a file by default, apart from the operational log). A file is written through pino's
 * destination (sonic-boom: appends, closed by close()), synchronously: each line is in the file
 * before the call's answer leaves, and one small append costs a busy replica less than an
 * asynchronous write's hand-off to the thread pool and back (measured under the fleet bench).
 */
export class AuditLog {
  constructor(private readonly destination: AuditDestination) {}

  /**
   * Appends to `path` (created with its folder), or writes to standard error for "stderr".
   * Throws when the file cannot be opened.
   */
  static open(path: string): AuditLog {
    return new AuditLog(
      path === "stderr"
        ? pino.destination({ dest: 2, sync: true })
        : pino.destination({ dest: path, append: true, mkdir: true, sync: true }),
    );
  }

  record(entry: AuditRecord): void {
    this.destination.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
  }

  /** Syncs the file and closes it (standard error stays open). */
  async close(): Promise<void> {
    const destination = this.destination;
    if (!isFile(destination)) return;
    await new Promise<void>((resolve) => {
      destination.once("close", () => resolve());
      // A disk that fails the last write: the lines are lost either way, the gateway still stops.
      destination.once("error", () => resolve());
      destination.end();
    });
  }
}

function isFile(destination: AuditDestination): destination is FileDestination {
  return "end" in destination && "once" in destination;
}

/** What the answer's body says, read back from the serialized payload (only for audited calls). */
function answerOf(reply: FastifyReply, payload: unknown) {
  if (typeof payload !== "string") return {};
  try {
    const body = JSON.parse(payload) as { name?: unknown; error?: { code?: string; reason?: string } };
    if (reply.statusCode >= 400) return { code: body.error?.code, reason: body.error?.reason };
    return typeof body.name === "string" && body.name.startsWith("operations/")
      ? { operation: body.name }
      : {};
  } catch {
    return {};
  }
}

function createdName(request: FastifyRequest): string | undefined {
  const body = request.body as { name?: unknown } | undefined;
  return request.method === "POST" && typeof body?.name === "string" ? body.name : undefined;
}

/** Audits every state-changing call of the scope it is registered in (the /v1 routes). */
export const auditTrail = fp(
  (app: FastifyInstance, options: { audit: AuditLog | undefined }) => {
    const audit = options.audit;
    if (!audit) return;
    app.addHook("onSend", (request, reply, payload, done) => {
      if (STATE_CHANGING.has(request.method)) {
        const answer = answerOf(reply, payload);
        // The verified token, also on a call its role may not make (a 403 is someone's).
        const principal = request.caller;
        const name = createdName(request);
        audit.record({
          requestId: request.id,
          tokenId: principal?.tokenId ?? null,
          role: principal?.role ?? null,
          tenant: principal?.tenant ?? null,
          method: request.method,
          resource: request.url.split("?")[0]!,
          ...(name !== undefined ? { name } : {}),
          status: reply.statusCode,
          outcome: reply.statusCode < 400 ? "OK" : (answer.code ?? `HTTP_${reply.statusCode}`),
          ...(answer.reason ? { reason: answer.reason } : {}),
          ...(answer.operation ? { operation: answer.operation } : {}),
        });
      }
      done(null, payload);
    });
  },
  { name: "vplane-audit-trail" },
);
