import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { VplaneError, toVplaneError, type Logger } from "@vplane/service-kit";
import { StoreConflictError, StoreUnavailableError, type TransactionOp } from "@vplane/store";
import { errorBody } from "../http/error-body.js";
import type { GatewayMetrics } from "../gateway-metrics.js";
import { operationError } from "../registry/registry-error.js";
import { MAX_EVENTS, operationId, type OperationRecords, type OperationRecord } from "./operation-records.js";
import { OperationWriter, type Along } from "./operation-writer.js";
import { stepReport } from "./stored-operation.js";
import { OutageWait, outlastingOutage, REGISTRY_OUTAGE_MS } from "./registry-outage.js";
import type { Versioned } from "../registry/typed-entry.js";
import { unansweredPause } from "../registry/unanswered-pause.js";
import type { MigrationStatus } from "../schemas/migration-schema.js";
import type { Operation, OperationState, OperationStep } from "../schemas/operation-schema.js";

/** A failure of one step of an operation, naming the step (where) beside the error (why). */
export class StepFailure extends Error {
  constructor(
    readonly step: string,
    readonly error: VplaneError,
    readonly rollback: string,
    /** Migrations: the migration phase that failed (details.phase of the error). */
    readonly phase?: string,
  ) {
    super(`${step} failed: ${error.message}${rollback ? `; ${rollback}` : ""}`);
  }
}

/**
 * What the work of an operation sees: progress reporting, its step list and cancellation.
 * Progress events and step states are kept in memory and written to the registry together, at
 * the next checkpoint, at a progress that carries a migration status, or at the end (a create
 * writes its record three times, not once per event: see OperationWriter). Watchers get them
 * when they are written.
 */
export interface OperationContext {
  readonly id: string;
  /** Aborted on cancel (seen on this replica or in the registry) and on the total timeout. */
  readonly signal: AbortSignal;
  /**
   * Records progress: one event, streamed to watchers once written. `migration` replaces the
   * operation's mirrored migration status (metadata.migration, copied into this and later
   * events) and is written at once, with what was recorded before it: a replica adopting the
   * operation follows the migration by it.
   */
  progress(percent: number, step: string, message: string, migration?: MigrationStatus): Promise<void>;
  /** Sets the state of a step (adding it when new); written with the next write. */
  step(name: string, state: OperationStep["state"], detail?: string): Promise<void>;
  /**
   * Writes what was recorded, then throws CANCELLED or DEADLINE_EXCEEDED when the operation must
   * stop (a cancel through any replica changed the record, so the write sees it). Call it before
   * each call that changes something on a host, after recording that step RUNNING.
   * `commit`: writes that make the work's result durable, made in the same transaction only when
   * the operation goes on (once made, nothing stops it: the checkpoint returns). With
   * `response`, that transaction also ends the operation SUCCEEDED with it (its current step
   * SUCCEEDED): the work then returns that response, and nothing more is written.
   */
  checkpoint(commit?: TransactionOp[], response?: unknown): Promise<void>;
  /**
   * Runs a registry call of the work (one safe to repeat: see outlastingOutage), asked again while
   * the registry does not answer, as the operation's own record writes are.
   */
  untilAnswered<T>(call: () => Promise<T>): Promise<T>;
}

export function newOperationRecord(fields: {
  kind: Operation["metadata"]["kind"];
  tenant: string;
  vm: string;
  host: string;
  owner: string;
  steps: string[];
}): OperationRecord {
  const now = new Date().toISOString();
  return {
    name: `operations/op-${randomBytes(10).toString("hex")}`,
    done: false,
    metadata: {
      kind: fields.kind,
      vm: fields.vm,
      tenant: fields.tenant,
      host: fields.host,
      state: "RUNNING",
      progressPercent: 0,
      step: "queued",
      steps: fields.steps.map((name) => ({ name, state: "PENDING" })),
      cancelRequested: false,
      createTime: now,
      updateTime: now,
      lastSeq: 1,
    },
    events: [
      { seq: 1, time: now, state: "RUNNING", progressPercent: 0, step: "queued", message: "accepted" },
    ],
    owner: fields.owner,
  };
}

/** The record with one more progress event (its current state, step and `message`). */
export function withEvent(record: OperationRecord, message: string): OperationRecord {
  const time = new Date().toISOString();
  const seq = record.metadata.lastSeq + 1;
  const event = {
    seq,
    time,
    state: record.metadata.state,
    progressPercent: record.metadata.progressPercent,
    step: record.metadata.step,
    message,
    ...(record.metadata.migration ? { migration: record.metadata.migration } : {}),
  };
  return {
    ...record,
    metadata: { ...record.metadata, updateTime: time, lastSeq: seq },
    events: [...record.events, event].slice(-MAX_EVENTS),
  };
}

const CANCELLED = () =>
  new VplaneError({ code: "CANCELLED", reason: "OPERATION_CANCELLED", message: "cancelled by a caller" });
const ABANDONED = () =>
  new VplaneError({
    code: "ABORTED",
    reason: "OPERATION_ABANDONED",
    message: "another gateway replica ended or adopted this operation as abandoned",
  });

/** Tries of the write that records an operation's end (pauses 0.5, 1, 2, 4, then 5 s: ~45 s). */
const FINAL_WRITE_ATTEMPTS = 12;
const endWritePause = (attempt: number) => unansweredPause(attempt, 250, 5_000);

/**
 * The error that ends an operation whose gateway replica stopped while running it (ended or
 * taken over by OperationRecovery on another replica); `then` says what became of the VM.
 */
export function replicaStopped(owner: string, step: string, then = ""): VplaneError {
  return new VplaneError({
    code: "ABORTED",
    reason: "OPERATION_ABANDONED",
    message: `gateway replica ${owner} stopped while running this operation (at step "${step}")${then}`,
  });
}

/** The abort reason of work whose operation another replica ended or adopted. */
export const isAbandonment = (reason: unknown): boolean =>
  reason instanceof VplaneError && reason.reason === "OPERATION_ABANDONED";

/** How an operation ended. */
type Final = Pick<Operation, "error" | "response"> & { state: OperationState };

/** The record with step `name` in `state` (added when new) and an event saying so. */
function withStep(
  record: OperationRecord,
  name: string,
  state: OperationStep["state"],
  detail?: string,
): OperationRecord {
  const step = { name, state, ...(detail ? { detail } : {}) };
  const steps = record.metadata.steps.some((s) => s.name === name)
    ? record.metadata.steps.map((s) => (s.name === name ? step : s))
    : [...record.metadata.steps, step];
  return withEvent(
    { ...record, metadata: { ...record.metadata, steps, step: name } },
    `${name}: ${stepReport(state, detail)}`,
  );
}

/** The record ended as `final` says, with an event saying so. */
function ended(record: OperationRecord, final: Final): OperationRecord {
  return withEvent(
    {
      ...record,
      done: true,
      metadata: {
        ...record.metadata,
        state: final.state,
        progressPercent: final.state === "SUCCEEDED" ? 100 : record.metadata.progressPercent,
        step: final.state === "SUCCEEDED" ? "done" : record.metadata.step,
      },
      ...(final.response !== undefined ? { response: final.response } : {}),
      ...(final.error ? { error: final.error } : {}),
    },
    final.state === "SUCCEEDED" ? "succeeded" : `${final.state.toLowerCase()}: ${final.error?.message ?? ""}`,
  );
}

/** Whether `record` was ended SUCCEEDED by its owner `owner` (a commit that ended it). */
const endedBy = (record: OperationRecord, owner: string) =>
  record.done && record.owner === owner && record.metadata.state === "SUCCEEDED";

/**
 * The write of a commit that ends the operation. When its outcome is unknown (the registry did
 * not answer), what it did is read back before anything is undone: had it applied, undoing the
 * work would leave a result recorded SUCCEEDED whose devices were deleted. The read is asked
 * again with growing pauses as the final write is; if it never answers, the write's error is
 * thrown (the work is undone, as for a commit known to have failed). A commit that did not apply
 * because the registry did not answer is written again, for up to `outageMs` (an election).
 */
async function endingWrite(writer: OperationWriter, along: Along, owner: string, outageMs: number) {
  const outage = new OutageWait(outageMs);
  for (;;) {
    try {
      return await writer.write(undefined, along);
    } catch (error) {
      if (error instanceof StoreConflictError) throw error;
      const now = await readBack(writer);
      if (now && endedBy(now, owner)) return now;
      // Not applied (all or nothing), or still unknown: written again only in the first case.
      if (!now || !(error instanceof StoreUnavailableError) || !(await outage.next())) throw error;
    }
  }
}

/** The record read back after a write whose outcome is unknown; undefined if the registry never answered. */
async function readBack(writer: OperationWriter): Promise<OperationRecord | undefined> {
  for (let attempt = 1; attempt < FINAL_WRITE_ATTEMPTS; attempt++) {
    await endWritePause(attempt);
    const now = await writer.read().catch(() => undefined);
    if (now) return now;
  }
  return undefined;
}

/** How long a replica answers an operation that ended here from the record it ended with. */
const ENDED_KEPT_MS = 5_000;

/** An operation running on this replica; `latest`: its record as last stored or read here. */
interface Running {
  abort: AbortController;
  done: Promise<void>;
  latest: Versioned<OperationRecord> | undefined;
}

/** Keeps `seen` as the latest record unless a newer one is kept already (answers may cross). */
function noteLatest(running: Running, seen: Versioned<OperationRecord>): void {
  if (!running.latest || seen.revision > running.latest.revision) running.latest = seen;
}

/**
 * Runs long-running operations in the background of this gateway: persists their progress events
 * in the registry, several to a write (so any replica answers GET and streams them), publishes
 * them to this replica's watchers, honours cancel and the total timeout between steps, and writes
 * the final state:
 * SUCCEEDED with the response, CANCELLED when cancel was honoured, FAILED with where and why.
 */
export class OperationRunner {
  /** Emits `${tenant}/${id}` with the updated OperationRecord. */
  readonly events = new EventEmitter().setMaxListeners(0);
  private readonly running = new Map<string, Running>();
  /** Records of operations that ended here lately (see keepEnded). */
  private readonly ended = new Map<string, OperationRecord>();

  constructor(
    private readonly operations: OperationRecords,
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
    private readonly timeoutMs: number,
    /** How long a step waits for a registry that does not answer (REGISTRY_OUTAGE_MS). */
    private readonly registryOutageMs = REGISTRY_OUTAGE_MS,
  ) {}

  /**
   * Runs `work` for `record`, an operation this replica owns. `revision`: the record's revision
   * in the registry when the caller just stored it (saves reading it before the first write).
   */
  start(
    record: OperationRecord,
    work: (context: OperationContext) => Promise<unknown>,
    revision?: number,
  ): void {
    const tenant = record.metadata.tenant;
    const id = operationId(record);
    const key = `${tenant}/${id}`;
    const abort = new AbortController();
    const timer = setTimeout(
      () =>
        abort.abort(
          new VplaneError({
            code: "DEADLINE_EXCEEDED",
            reason: "OPERATION_TIMEOUT",
            message: `the operation did not finish within ${this.timeoutMs} ms`,
          }),
        ),
      this.timeoutMs,
    );
    // A record already done, or now owned by another replica, was ended or adopted by that
    // replica (OperationRecovery): left as it is.
    const ours = (r: OperationRecord) => !r.done && r.owner === record.owner;
    const known = revision === undefined ? undefined : { value: record, revision };
    const running: Running = { abort, done: Promise.resolve(), latest: known };
    const writer = new OperationWriter(
      this.operations,
      tenant,
      id,
      ours,
      (stored) => {
        noteLatest(running, stored);
        this.events.emit(key, stored.value);
      },
      this.registryOutageMs,
      known,
    );
    const context: OperationContext = {
      id,
      signal: abort.signal,
      progress: async (percent, step, message, migration) => {
        writer.note((r) =>
          withEvent(
            {
              ...r,
              metadata: {
                ...r.metadata,
                progressPercent: Math.max(r.metadata.progressPercent, percent),
                step,
                ...(migration ? { migration } : {}),
              },
            },
            message,
          ),
        );
        if (migration) await writer.write();
      },
      step: (name, state, detail) => {
        writer.note((r) => withStep(r, name, state, detail));
        return Promise.resolve();
      },
      checkpoint: async (commit, response) => {
        if (!abort.signal.aborted) {
          const goesOn = (r: OperationRecord) => ours(r) && !r.metadata.cancelRequested;
          if (commit && response !== undefined) {
            const success = { state: "SUCCEEDED" as const, response };
            const change = (r: OperationRecord) => ended(withStep(r, r.metadata.step, "SUCCEEDED"), success);
            const stored = await endingWrite(
              writer,
              { ops: commit, proceed: goesOn, change },
              record.owner,
              this.registryOutageMs,
            );
            if (stored && endedBy(stored, record.owner)) {
              endedByCommit = true;
              return;
            }
            if (!(stored && ours(stored))) abort.abort(ABANDONED());
            else if (stored.metadata.cancelRequested) abort.abort(CANCELLED());
            throw toVplaneError(abort.signal.reason);
          }
          const stored = await writer.write(undefined, commit && { ops: commit, proceed: goesOn });
          if (commit && stored && goesOn(stored)) return; // committed
          if ((stored || commit) && !(stored && ours(stored))) abort.abort(ABANDONED());
          else if (stored?.metadata.cancelRequested) abort.abort(CANCELLED());
        }
        if (abort.signal.aborted) throw toVplaneError(abort.signal.reason);
      },
      untilAnswered: (call) => outlastingOutage(call, this.registryOutageMs),
    };
    let endedByCommit = false;
    const done = (async () => {
      let final: Final;
      try {
        const response = await work(context);
        final = { state: "SUCCEEDED", response };
      } catch (error) {
        const failure = error instanceof StepFailure ? error : undefined;
        const cause = failure ? failure.error : operationError(error);
        if (!failure && !(error instanceof VplaneError) && cause.code === "INTERNAL")
          this.log.error({ err: error, operation: id }, "operation crashed");
        const state: OperationState = cause.code === "CANCELLED" ? "CANCELLED" : "FAILED";
        const message = failure ? failure.message : cause.message;
        final = {
          state,
          error: errorBody(
            new VplaneError({ ...cause, message }),
            failure ? { step: failure.step, ...(failure.phase ? { phase: failure.phase } : {}) } : {},
          ).error,
        };
      } finally {
        clearTimeout(timer);
      }
      // The end must be recorded: a record left RUNNING by a replica that is alive is never taken
      // over by another, so a registry that failed the write (a member gone, a deadline passed)
      // is asked again, with growing pauses, for about a minute.
      // (Already recorded when the work's commit ended the operation.)
      for (let attempt = 1; !endedByCommit; attempt++) {
        try {
          await writer.write((r) => ended(r, final));
          break;
        } catch (error) {
          if (attempt >= FINAL_WRITE_ATTEMPTS) {
            this.log.error({ err: error, operation: id }, "could not record the end of an operation");
            break;
          }
          this.log.warn(
            { err: error, operation: id, attempt },
            "could not record the end of an operation yet",
          );
          await endWritePause(attempt);
        }
      }
      this.metrics.operations.inc({ kind: record.metadata.kind, state: final.state });
      this.log.info({ operation: id, kind: record.metadata.kind, state: final.state }, "operation finished");
      this.running.delete(key);
      this.keepEnded(key, running.latest?.value);
    })();
    running.done = done;
    this.running.set(key, running);
  }

  /**
   * The record of an operation this replica runs, as this replica last stored or read it, or the
   * one it ended with here in the last ENDED_KEPT_MS; undefined otherwise. The runner is the record's writer: what it stored is what
   * the registry holds, except a cancel or an adoption made through another replica, which this
   * replica sees at its next write (a step's checkpoint, seconds at most) and answers from then.
   */
  latest(tenant: string, id: string): OperationRecord | undefined {
    const key = `${tenant}/${id}`;
    return this.running.get(key)?.latest?.value ?? this.ended.get(key);
  }

  /**
   * Keeps the record an operation ended with for ENDED_KEPT_MS: a done record never changes
   * again, and its clients' last poll (the one that finds it done) comes after its end.
   */
  private keepEnded(key: string, record: OperationRecord | undefined): void {
    if (!record?.done) return;
    this.ended.set(key, record);
    setTimeout(() => this.ended.delete(key), ENDED_KEPT_MS).unref();
  }

  /**
   * Marks cancel as requested (AIP-151: accepted is not cancelled; the final state says which)
   * and aborts the work if it runs on this replica; other replicas see the flag at their next
   * step. Returns the record after the change; undefined when there is no such operation.
   */
  async requestCancel(tenant: string, id: string): Promise<OperationRecord | undefined> {
    const stored = await this.operations.update(tenant, id, (r) =>
      r.done || r.metadata.cancelRequested
        ? undefined
        : withEvent(
            { ...r, metadata: { ...r.metadata, cancelRequested: true, state: "CANCELLING" } },
            "cancel requested",
          ),
    );
    const running = this.running.get(`${tenant}/${id}`);
    if (running && stored) noteLatest(running, stored);
    if (stored) this.events.emit(`${tenant}/${id}`, stored.value);
    running?.abort.abort(CANCELLED());
    return stored?.value;
  }

  /**
   * Makes `owner` the owner of the unfinished operation of a replica that stopped, under
   * compare-and-swap with an event saying so; the record as adopted, or undefined when another
   * replica took it first or it ended meanwhile. The caller then start()s the record's work.
   */
  async adopt(record: OperationRecord, owner: string, message: string): Promise<OperationRecord | undefined> {
    const { tenant } = record.metadata;
    const id = operationId(record);
    const adopted = await this.operations.update(tenant, id, (r) =>
      r.done || r.owner !== record.owner ? undefined : withEvent({ ...r, owner }, message),
    );
    // A declined update answers the record as it is: adopted only if it now names `owner`.
    if (adopted?.value.owner !== owner) return undefined;
    this.events.emit(`${tenant}/${id}`, adopted.value);
    return adopted.value;
  }

  /** Waits for the operations running on this replica (used on shutdown and in tests). */
  async drain(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.done));
  }
}
