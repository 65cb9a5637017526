import { createHash } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import {
  StoreUnavailableError,
  listAll,
  writeInTransactions,
  type Store,
  type TransactionOp,
} from "@vplane/store";
import { VplaneError } from "./vplane-error.js";

/** How long an answer is kept for retries: 24 hours, as the gateway keeps an Idempotency-Key. */
export const REQUEST_RETENTION_MS = 24 * 60 * 60 * 1000;
/** Answers kept per scope (a device) at most; beyond, the oldest goes first. */
export const ANSWERS_PER_SCOPE = 1024;

/** One mutating call: the resource it changes (`scope`), its request_id, method and message. */
export interface LedgerCall {
  scope: string;
  requestId: string;
  method: string;
  request: unknown;
}

/**
 * The store writes that make a mutation durable, joined to the transaction that remembers its
 * answer; a function when they can only be computed once the scope's earlier writes are in.
 */
export type DurableWrites = readonly TransactionOp[] | (() => Promise<readonly TransactionOp[]>);

/**
 * What applying a mutation gave: its answer, or the error it ends with (a batch that stopped
 * part way still makes the entries it applied durable). `writes` absent: the mutation changes
 * runtime state only, and so is its answer kept (in memory). `undo` puts the device back as it
 * was before the mutation, for when its writes fail.
 */
export type Applied<T> = ({ answer: T } | { error: unknown }) & { writes?: DurableWrites; undo?: () => void };

/** A mutation applied to its device whose writes are not in the store yet. */
interface Unwritten {
  undo: (() => void) | undefined;
  /** Undone with an earlier mutation of its scope whose writes failed: its own are not made. */
  undone: boolean;
  /** What its undo threw: the device may keep some of the mutation (its call says so). */
  undoFailure?: { error: unknown };
}

interface Answer {
  /** sha256 of the request_id. */
  id: string;
  method: string;
  fingerprint: string;
  timeMs: number;
  answer: unknown;
  durable: boolean;
}

interface InFlight {
  method: string;
  fingerprint: string;
  done: Promise<unknown>;
}

/**
 * The answers of a service's mutating calls by request_id, so that a retry gets the first
 * answer and never a second effect. apply → persist → remember: the call changes the device,
 * its durable writes and its answer go in one transaction (the last, when the writes need
 * several), then the answer is served to retries for REQUEST_RETENTION_MS. A request_id reused
 * with another method or another message is INVALID_ARGUMENT REQUEST_ID_REUSED; a retry that
 * arrives while the first runs waits for its answer. An answer is durable when its mutation is
 * (a restarted service still serves it). A call that fails is not remembered: its retry runs
 * again. Writes of one scope reach the store in the order their calls were applied.
 *
 * Never a half-applied change: when a mutation's writes fail, it is undone (Applied.undo), and
 * so is every later mutation of its scope applied on top of it, latest first; each of them
 * answers UNAVAILABLE STORE_UNAVAILABLE (retry: a write whose answer was lost may have landed,
 * and the retry applies and writes again) or the store's error. A mutation without an undo
 * stays applied; an undo that throws stops none of the others, and its call's answer says so.
 *
 * Hand-written: the answers live in the service's own store beside the configuration they
 * guard, in the same transactions, which no idempotency library offers.
 */
export class RequestLedger {
  private readonly answers = new Map<string, Map<string, Answer>>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly writes = new Map<string, Promise<void>>();
  /** Store keys of durable answers evicted from memory, to delete with the scope's next write. */
  private readonly pendingDeletes = new Map<string, string[]>();
  /** Per scope, the mutations applied whose writes are not in yet, in the order applied. */
  private readonly unwritten = new Map<string, Unwritten[]>();

  /**
   * @param prefix store keys of the answers, "<service>/requests/"; each under
   * `${prefix}${scope}/${sha256(request_id)}`.
   */
  constructor(
    private readonly store: Store,
    private readonly prefix: string,
    private readonly options: { retentionMs?: number; perScope?: number; now?: () => number } = {},
  ) {}

  private get retentionMs(): number {
    return this.options.retentionMs ?? REQUEST_RETENTION_MS;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * Reads the durable answers back (on start); those of scopes no longer `live` (a device
   * deleted while its answers were being removed) and those past retention are deleted.
   */
  async load(live: ReadonlySet<string>): Promise<void> {
    const stale: TransactionOp[] = [];
    const kept: { scope: string; answer: Answer }[] = [];
    for (const entry of await listAll(this.store, this.prefix)) {
      const scope = entry.key.slice(this.prefix.length, entry.key.lastIndexOf("/"));
      const answer = entry.value instanceof Uint8Array ? (deserialize(entry.value) as Answer) : undefined;
      if (answer && live.has(scope) && !this.expired(answer)) kept.push({ scope, answer });
      else stale.push({ op: "delete", key: entry.key });
    }
    kept.sort((a, b) => a.answer.timeMs - b.answer.timeMs);
    for (const { scope, answer } of kept) this.scopeAnswers(scope).set(answer.id, answer);
    await writeInTransactions(this.store, stale);
  }

  /**
   * Runs a mutating call once per request_id (an empty one: every time): `apply` changes the
   * device synchronously (calls are applied in the order they arrive) and says what to write.
   */
  async run<T>(call: LedgerCall, apply: () => Applied<T>): Promise<T> {
    if (call.requestId === "") return this.settle(call.scope, apply(), undefined);
    const id = hashOf(call.requestId);
    const fingerprint = hashOf(canonicalJson(call.request));
    const flightKey = `${call.scope}/${id}`;
    const flying = this.inFlight.get(flightKey);
    if (flying) {
      this.checkSame(call, fingerprint, flying);
      return flying.done as Promise<T>;
    }
    const kept = this.answers.get(call.scope)?.get(id);
    if (kept && !this.expired(kept)) {
      this.checkSame(call, fingerprint, kept);
      return kept.answer as T;
    }
    const done = this.settle(call.scope, apply(), { id, method: call.method, fingerprint });
    this.inFlight.set(flightKey, { method: call.method, fingerprint, done });
    try {
      return await done;
    } finally {
      this.inFlight.delete(flightKey);
    }
  }

  /**
   * `written`: a write of `scope` that no call answers (a live migration's finish, made once the
   * devices run): the scope's later writes wait for it, and if it fails their mutations are
   * undone, as after a call's failed write.
   */
  follow(scope: string, written: Promise<void>): void {
    const after = async () => (await written, []);
    this.settle(scope, { answer: undefined, writes: after }, undefined).catch(() => undefined);
  }

  /** Forgets a deleted device's answers, once its writes in flight are in. */
  async forget(scope: string): Promise<void> {
    await this.writes.get(scope);
    this.answers.delete(scope);
    this.writes.delete(scope);
    this.pendingDeletes.delete(scope);
    this.unwritten.delete(scope);
    const keys = await listAll(this.store, `${this.prefix}${scope}/`);
    await writeInTransactions(
      this.store,
      keys.map((e) => ({ op: "delete", key: e.key })),
    );
  }

  /** Persists what `applied` wrote (after the scope's earlier writes), then remembers its answer. */
  private async settle<T>(
    scope: string,
    applied: Applied<T>,
    remember: { id: string; method: string; fingerprint: string } | undefined,
  ): Promise<T> {
    const answer: Answer | undefined =
      remember && "answer" in applied
        ? { ...remember, timeMs: this.now(), answer: applied.answer, durable: applied.writes !== undefined }
        : undefined;
    const writes = applied.writes;
    if (writes === undefined) {
      if (answer) this.keep(scope, answer, this.evictedBy(scope, answer));
    } else {
      const mine: Unwritten = { undo: applied.undo, undone: false };
      let unwritten = this.unwritten.get(scope);
      if (!unwritten) this.unwritten.set(scope, (unwritten = []));
      unwritten.push(mine);
      const write = (this.writes.get(scope) ?? Promise.resolve()).then(async () => {
        if (mine.undone) throw EARLIER_WRITE_FAILED;
        const ops = [...(typeof writes === "function" ? await writes() : writes)];
        ops.push(...this.takePendingDeletes(scope, answer));
        const evicted = answer ? this.evictedBy(scope, answer) : [];
        if (answer) {
          for (const old of evicted) if (old.durable) ops.push({ op: "delete", key: this.keyOf(scope, old) });
          ops.push({ op: "put", key: this.keyOf(scope, answer), value: serialize(answer) });
        }
        await writeInTransactions(this.store, ops);
        if (answer) this.keep(scope, answer, evicted);
      });
      const settled = write.then(
        () => this.written(scope, mine),
        () => this.undoFrom(scope, mine),
      );
      this.writes.set(scope, settled);
      try {
        await write;
      } catch (error) {
        await settled;
        throw writeFailure(error, mine.undoFailure);
      }
    }
    if ("error" in applied) throw applied.error;
    return applied.answer;
  }

  /** `mine`'s writes are in: it leaves the scope's unwritten mutations. */
  private written(scope: string, mine: Unwritten): void {
    const left = (this.unwritten.get(scope) ?? []).filter((u) => u !== mine);
    if (left.length > 0) this.unwritten.set(scope, left);
    else this.unwritten.delete(scope);
  }

  /**
   * `mine`'s writes failed: undoes it and every mutation of its scope applied after it, latest
   * first, each once. An undo that throws stops none of the others; its call reports it.
   */
  private undoFrom(scope: string, mine: Unwritten): void {
    const unwritten = this.unwritten.get(scope) ?? [];
    const at = unwritten.indexOf(mine);
    if (at < 0) return; // undone already, with an earlier one
    if (at > 0) this.unwritten.set(scope, unwritten.slice(0, at));
    else this.unwritten.delete(scope);
    for (const later of unwritten.slice(at).reverse()) {
      later.undone = true;
      try {
        later.undo?.();
      } catch (error) {
        later.undoFailure = { error };
      }
    }
  }

  /**
   * The answers `answer` pushes out of its scope: the oldest past retention, and beyond
   * ANSWERS_PER_SCOPE (an earlier answer under the same id is replaced, not evicted).
   */
  private evictedBy(scope: string, answer: Answer): Answer[] {
    const kept = this.answers.get(scope) ?? new Map<string, Answer>();
    let size = kept.size + (kept.has(answer.id) ? 0 : 1);
    const evicted: Answer[] = [];
    for (const old of kept.values()) {
      if (old.id === answer.id) continue;
      if (size <= (this.options.perScope ?? ANSWERS_PER_SCOPE) && !this.expired(old)) break;
      evicted.push(old);
      size--;
    }
    return evicted;
  }

  /**
   * Serves the answer to retries from now on, without `evicted`; durable ones evicted without a
   * write of their own (a runtime-only answer pushed them out) go with the scope's next write.
   */
  private keep(scope: string, answer: Answer, evicted: readonly Answer[]): void {
    const kept = this.scopeAnswers(scope);
    for (const old of evicted) {
      kept.delete(old.id);
      if (old.durable && !answer.durable)
        this.pendingDeletes.set(scope, [...(this.pendingDeletes.get(scope) ?? []), this.keyOf(scope, old)]);
    }
    kept.delete(answer.id);
    kept.set(answer.id, answer);
  }

  /** The pending deletes of the scope, but not of the key `answer` is about to be written under. */
  private takePendingDeletes(scope: string, answer: Answer | undefined): TransactionOp[] {
    const keys = this.pendingDeletes.get(scope) ?? [];
    this.pendingDeletes.delete(scope);
    const rewritten = answer ? this.keyOf(scope, answer) : undefined;
    return keys.filter((key) => key !== rewritten).map((key) => ({ op: "delete", key }));
  }

  private checkSame(
    call: LedgerCall,
    fingerprint: string,
    first: { method: string; fingerprint: string },
  ): void {
    if (first.method === call.method && first.fingerprint === fingerprint) return;
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "REQUEST_ID_REUSED",
      message:
        first.method === call.method
          ? `request_id ${call.requestId} was used for another ${call.method} request`
          : `request_id ${call.requestId} was used for ${first.method}`,
      field: "request_id",
    });
  }

  private expired(answer: Answer): boolean {
    return answer.timeMs + this.retentionMs <= this.now();
  }

  private scopeAnswers(scope: string): Map<string, Answer> {
    let kept = this.answers.get(scope);
    if (!kept) this.answers.set(scope, (kept = new Map<string, Answer>()));
    return kept;
  }

  private keyOf(scope: string, answer: { id: string }): string {
    return `${this.prefix}${scope}/${answer.id}`;
  }
}

/**
 * What a caller of a mutation whose writes failed is answered: UNAVAILABLE when the store did not
 * answer (or an earlier write of the device failed), the change undone; when its undo threw, the
 * message says so and what it threw (a retry applies the change again and writes it).
 */
function writeFailure(error: unknown, undoFailure: { error: unknown } | undefined): unknown {
  let cause: string;
  if (error === EARLIER_WRITE_FAILED)
    cause = "an earlier change of this device could not be written to the configuration store";
  else if (error instanceof StoreUnavailableError)
    cause = `the configuration store did not answer (${error.message})`;
  else return error;
  const undone = undoFailure
    ? `undoing this change failed (${messageOf(undoFailure.error)}): the device may keep some of it`
    : "this change was undone";
  return new VplaneError({
    code: "UNAVAILABLE",
    reason: "STORE_UNAVAILABLE",
    message: `${cause}; ${undone}: retry`,
  });
}

/** Thrown by the write of a mutation undone because an earlier one of its device could not be written. */
const EARLIER_WRITE_FAILED = new Error("an earlier write of the scope failed");

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function hashOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** A message as JSON, 64-bit integers and bytes included (the fingerprint of a request). */
function canonicalJson(message: unknown): string {
  return JSON.stringify(message, (_key, value: unknown) =>
    typeof value === "bigint"
      ? `${value}n`
      : value instanceof Uint8Array
        ? Buffer.from(value).toString("base64")
        : value,
  );
}
