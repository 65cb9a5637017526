// The long-running operations of this migration service (AIP-151): each runs once, reports
// progress with a sequence number, can be watched and waited for, and can be cancelled until it
// passes its point of no return. Two timeouts end it: no progress for a while, and in total.
// Operations live in memory: a restarted service has none (the README says so).
// Named apart from the gateway's OperationRecords (its operations in the shared registry).
import { randomUUID } from "node:crypto";
import type { Operation } from "@vplane/proto/gen/google/longrunning/operations";
import type { Any } from "@vplane/proto/gen/google/protobuf/any";
import type { OperationKind } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { OperationProgress, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { VplaneError, errorDetailOf, toRpcStatus, toVplaneError } from "@vplane/service-kit";
import type { MigrationMetrics } from "./migration-metrics.js";

const PROGRESS_TYPE = "type.googleapis.com/vplane.migration.v1.OperationProgress";
const TERMINAL = new Set([Phase.PHASE_COMPLETED, Phase.PHASE_FAILED, Phase.PHASE_CANCELLED]);

export interface OperationTimeouts {
  /** Fail after this long without a progress update, ms. */
  noProgressMs: number;
  /** Fail after this long in total, ms. */
  totalMs: number;
}

/** What a running operation's body sees. */
export interface OperationContext {
  readonly name: string;
  /** Aborted on cancel (before the point of no return) and on timeout; reason is a VplaneError. */
  readonly signal: AbortSignal;
  /** Records progress (bumps the sequence, wakes watchers, resets the no-progress timer). */
  update(patch: Partial<OperationProgress>): void;
  /** Throws the abort reason if the operation was cancelled or timed out. */
  checkpoint(): void;
  /** From here on a cancel is recorded but not honoured (e.g. switchover has begun). */
  passPointOfNoReturn(): void;
  readonly progress: Readonly<OperationProgress>;
}

interface Entry {
  progress: OperationProgress;
  startedAt: number;
  lastProgressAt: number;
  /** When the current phase began (ms): phase durations for the metrics. */
  phaseStartedAt: number;
  result: Operation["result"];
  readonly abort: AbortController;
  cancellable: boolean;
  readonly changed: Set<() => void>;
  timers: NodeJS.Timeout[];
}

export class MigrationOperations {
  private readonly entries = new Map<string, Entry>();
  private readonly runningByVm = new Map<string, string>();
  private readonly byRequestId = new Map<string, string>();

  constructor(
    private readonly maxFinished = 1000,
    private readonly metrics?: MigrationMetrics,
  ) {}

  /**
   * Starts `run` as a new operation on `vm`; ABORTED if one is already running on that VM.
   * `run` resolves with the response (packed into the Operation) or throws a VplaneError.
   * A repeated non-empty `requestId` returns the operation it started (a retry, not a new one).
   */
  start(
    kind: OperationKind,
    vm: string,
    requestId: string,
    timeouts: OperationTimeouts,
    run: (context: OperationContext) => Promise<Any>,
  ): Operation {
    const earlier = requestId ? this.byRequestId.get(requestId) : undefined;
    if (earlier && this.entries.has(earlier)) return this.get(earlier);
    const running = this.runningByVm.get(vm);
    if (running) {
      throw new VplaneError({
        code: "ABORTED",
        reason: "OPERATION_IN_PROGRESS",
        message: `${running} is still running on VM ${vm}`,
      });
    }
    const name = `operations/${randomUUID()}`;
    const entry: Entry = {
      progress: {
        ...OperationProgress.decode(new Uint8Array(0)), // every field at its default
        name,
        kind,
        vm,
        phase: Phase.PHASE_SETTING_UP,
        sequence: 1n,
        startTime: new Date(),
      },
      startedAt: Date.now(),
      lastProgressAt: Date.now(),
      phaseStartedAt: Date.now(),
      result: undefined,
      abort: new AbortController(),
      cancellable: true,
      changed: new Set(),
      timers: [],
    };
    this.entries.set(name, entry);
    this.runningByVm.set(vm, name);
    if (requestId) this.byRequestId.set(requestId, name);
    this.armTimeouts(entry, timeouts);
    void this.execute(entry, run);
    return this.toOperation(entry);
  }

  get(name: string): Operation {
    return this.toOperation(this.entry(name));
  }

  progressOf(name: string): OperationProgress {
    return this.snapshotProgress(this.entry(name));
  }

  /** Operations, newest first, paged by an opaque token (the index to continue at). */
  list(pageSize: number, pageToken: string): { operations: Operation[]; nextPageToken: string } {
    const all = [...this.entries.values()].reverse();
    const start = pageToken === "" ? 0 : Number.parseInt(pageToken, 10);
    if (!Number.isSafeInteger(start) || start < 0 || start > all.length) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "INVALID_PAGE_TOKEN",
        field: "page_token",
        message: "page_token is not one this service issued",
      });
    }
    const size = pageSize <= 0 ? 50 : Math.min(pageSize, 500);
    const page = all.slice(start, start + size).map((e) => this.toOperation(e));
    return { operations: page, nextPageToken: start + size < all.length ? String(start + size) : "" };
  }

  /**
   * Requests cancellation: honoured (phase CANCELLED once the body has unwound) unless the
   * operation is done or past its point of no return, where it is only recorded.
   */
  cancel(name: string): void {
    const entry = this.entry(name);
    if (TERMINAL.has(entry.progress.phase)) return;
    this.patch(entry, { cancelRequested: true });
    if (entry.cancellable) {
      entry.abort.abort(
        new VplaneError({
          code: "CANCELLED",
          reason: "OPERATION_CANCELLED",
          message: `${name} was cancelled`,
        }),
      );
    }
  }

  /** Forgets a finished operation; FAILED_PRECONDITION while it runs. */
  delete(name: string): void {
    const entry = this.entry(name);
    if (!TERMINAL.has(entry.progress.phase)) {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "OPERATION_RUNNING",
        message: `${name} is still running; cancel it first`,
      });
    }
    this.entries.delete(name);
  }

  /** Resolves when the operation is done or `timeoutMs` passes, with its state then. */
  async wait(name: string, timeoutMs: number, signal?: AbortSignal): Promise<Operation> {
    const entry = this.entry(name);
    const until = Date.now() + timeoutMs;
    while (!TERMINAL.has(entry.progress.phase) && Date.now() < until && !signal?.aborted) {
      await this.nextChange(entry, until - Date.now(), signal);
    }
    return this.toOperation(entry);
  }

  /** Sends every progress state after `afterSequence` until the operation ends or `signal` aborts. */
  async watch(
    name: string,
    afterSequence: bigint,
    send: (progress: OperationProgress) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const entry = this.entry(name);
    let sent = afterSequence;
    for (;;) {
      if (signal.aborted) return;
      if (entry.progress.sequence > sent) {
        const progress = this.snapshotProgress(entry);
        sent = progress.sequence;
        await send(progress);
      }
      if (TERMINAL.has(entry.progress.phase) && entry.progress.sequence === sent) return;
      if (entry.progress.sequence === sent) await this.nextChange(entry, 60_000, signal);
    }
  }

  private async execute(entry: Entry, run: (context: OperationContext) => Promise<Any>) {
    const context: OperationContext = {
      name: entry.progress.name,
      signal: entry.abort.signal,
      update: (patch) => this.patch(entry, patch),
      checkpoint: () => {
        if (entry.abort.signal.aborted) throw toVplaneError(entry.abort.signal.reason);
      },
      passPointOfNoReturn: () => {
        entry.cancellable = false;
      },
      get progress() {
        return entry.progress;
      },
    };
    try {
      const response = await run(context);
      entry.result = { $case: "response", value: response };
      this.patch(entry, { phase: Phase.PHASE_COMPLETED });
    } catch (thrown) {
      const error = toVplaneError(entry.abort.signal.aborted ? entry.abort.signal.reason : thrown);
      const cancelled = error.reason === "OPERATION_CANCELLED";
      entry.result = { $case: "error", value: toRpcStatus(error) };
      this.patch(entry, {
        phase: cancelled ? Phase.PHASE_CANCELLED : Phase.PHASE_FAILED,
        failedPhase: cancelled ? Phase.PHASE_UNSPECIFIED : entry.progress.phase,
        error: errorDetailOf(error),
        errorCode: error.code,
        errorMessage: error.message,
      });
    } finally {
      for (const timer of entry.timers) clearTimeout(timer);
      this.runningByVm.delete(entry.progress.vm);
      this.forgetOldest();
    }
  }

  private armTimeouts(entry: Entry, timeouts: OperationTimeouts) {
    const fail = (reason: string, message: string) =>
      entry.abort.abort(new VplaneError({ code: "DEADLINE_EXCEEDED", reason, message }));
    entry.timers.push(
      setTimeout(
        () => fail("OPERATION_TIMED_OUT", `no completion within ${timeouts.totalMs} ms`),
        timeouts.totalMs,
      ),
    );
    const watchdog = () =>
      setTimeout(() => {
        const idle = Date.now() - entry.lastProgressAt;
        if (idle >= timeouts.noProgressMs)
          fail("OPERATION_STALLED", `no progress for ${timeouts.noProgressMs} ms`);
        else entry.timers.push(setTimeout(watchdog, timeouts.noProgressMs - idle));
      }, timeouts.noProgressMs);
    entry.timers.push(watchdog());
  }

  private patch(entry: Entry, patch: Partial<OperationProgress>) {
    const now = Date.now();
    const previous = entry.progress.phase;
    const elapsedMs = BigInt(now - entry.startedAt);
    entry.progress = { ...entry.progress, ...patch, elapsedMs, sequence: entry.progress.sequence + 1n };
    entry.lastProgressAt = now;
    if (this.metrics && entry.progress.phase !== previous) {
      this.metrics.phaseEnded(entry.progress.kind, previous, (now - entry.phaseStartedAt) / 1000);
      entry.phaseStartedAt = now;
      if (TERMINAL.has(entry.progress.phase))
        this.metrics.ended(entry.progress.kind, entry.progress.phase, entry.progress.downtimeMs);
    }
    for (const wake of [...entry.changed]) wake();
  }

  private nextChange(entry: Entry, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        entry.changed.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      entry.changed.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  private snapshotProgress(entry: Entry): OperationProgress {
    const elapsedMs = TERMINAL.has(entry.progress.phase)
      ? entry.progress.elapsedMs
      : BigInt(Date.now() - entry.startedAt);
    return { ...entry.progress, elapsedMs };
  }

  private toOperation(entry: Entry): Operation {
    return {
      name: entry.progress.name,
      metadata: {
        typeUrl: PROGRESS_TYPE,
        value: Buffer.from(OperationProgress.encode(this.snapshotProgress(entry)).finish()),
      },
      done: TERMINAL.has(entry.progress.phase),
      result: entry.result,
    };
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) {
      throw new VplaneError({
        code: "NOT_FOUND",
        reason: "OPERATION_NOT_FOUND",
        field: "name",
        message: `${name} does not exist`,
      });
    }
    return entry;
  }

  private forgetOldest() {
    const finished = [...this.entries.values()].filter((e) => TERMINAL.has(e.progress.phase));
    for (const old of finished.slice(0, Math.max(0, finished.length - this.maxFinished))) {
      this.entries.delete(old.progress.name);
    }
    for (const [requestId, name] of this.byRequestId)
      if (!this.entries.has(name)) this.byRequestId.delete(requestId);
  }
}
