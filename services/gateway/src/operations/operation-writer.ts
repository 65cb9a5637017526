import { isDeepStrictEqual } from "node:util";
import { StoreConflictError, StoreUnavailableError, type TransactionOp } from "@vplane/store";
import { conflictBackoff, MAX_CONFLICT_RETRIES } from "../registry/conflict-backoff.js";
import type { Versioned } from "../registry/typed-entry.js";
import type { OperationRecord, OperationRecords } from "./operation-records.js";
import { OutageWait } from "./registry-outage.js";

/** A change to an operation's record (an event, a step's state, the end). */
export type RecordChange = (record: OperationRecord) => OperationRecord;

/** Writes made with the record's in one transaction, only when `proceed` holds (see write). */
export interface Along {
  ops: TransactionOp[];
  proceed: (record: OperationRecord) => boolean;
  change?: RecordChange;
}

/**
 * The registry record of one operation as the replica running it writes it. A registry write is
 * the expensive part of a step (an etcd write is a quorum round with an fsync on each member), so
 * changes are gathered and written together: `note` keeps a change in memory, `write` stores every
 * change noted so far in one compare-and-swap on the revision this writer last saw. That write is
 * also the cheap check for a cancel or an adoption: either changed the record, so the swap fails,
 * the record is read again and the noted changes apply to what is now there.
 *
 * What a crash loses is only what was not written yet: progress events and step states since the
 * last write. Recovery needs neither (it reads owner, kind, step and the migration status, which
 * the work writes at once where they matter; see OperationContext). Writes run one at a time.
 */
export class OperationWriter {
  private readonly noted: RecordChange[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly operations: OperationRecords,
    private readonly tenant: string,
    private readonly id: string,
    /** Whether the record is still this writer's to change (not done, not adopted by another). */
    private readonly ours: (record: OperationRecord) => boolean,
    /** Called with every record this writer stored, and with one it found no longer its own. */
    private readonly stored: (record: Versioned<OperationRecord>) => void,
    /** How long a write alone waits for a registry that does not answer (REGISTRY_OUTAGE_MS). */
    private readonly outageMs: number,
    /** The record as last seen, when known (the transaction that created it): saves a read. */
    private known?: Versioned<OperationRecord>,
  ) {}

  /** Keeps `change` for the next write. */
  note(change: RecordChange): void {
    this.noted.push(change);
  }

  /**
   * Stores the noted changes and then `last`, when the record is still ours; the record as it now
   * is in the registry (undefined: there is none). With nothing to write it only reads.
   * `along`: more writes for the same transaction, and a last change of the record (`change`),
   * made only if `proceed` holds for the record they would follow (else the changes are written
   * without them); a conflict on one of them is thrown.
   */
  write(last?: RecordChange, along?: Along): Promise<OperationRecord | undefined> {
    const run = this.queue.then(() => this.writeNow(last, along));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The record as it is now in the registry (undefined: there is none). */
  read(): Promise<OperationRecord | undefined> {
    const run = this.queue.then(() => this.readNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async readNow(): Promise<OperationRecord | undefined> {
    this.known = await this.operations.get(this.tenant, this.id);
    return this.known?.value;
  }

  /** Whether the record read back (known) is `next`: the changes are in, not to be made twice. */
  private alreadyIn(next: OperationRecord, taken: number): boolean {
    if (!this.known || !isDeepStrictEqual(this.known.value, next)) return false;
    this.noted.splice(0, taken);
    this.stored(this.known);
    return true;
  }

  private async writeNow(last?: RecordChange, along?: Along): Promise<OperationRecord | undefined> {
    const taken = this.noted.length;
    const changes = last ? [...this.noted.slice(0, taken), last] : this.noted.slice(0, taken);
    if (changes.length === 0 && !along) return this.readNow();
    const outage = new OutageWait(this.outageMs);
    for (let attempt = 0; ; attempt++) {
      // What the registry holds is not known while a read or swap is unanswered (its answer may
      // be lost): a record written alone is then read again, after a pause, and written on what is
      // there (unless the lost write applied: the record is `next` already), for up to outageMs.
      // Writes made along with the record are the caller's to settle (endingWrite reads back the
      // commit's outcome).
      let next: OperationRecord | undefined;
      try {
        const base = this.known ?? (await this.operations.get(this.tenant, this.id));
        if (!base) return undefined;
        if (!this.ours(base.value)) {
          this.known = base;
          this.noted.splice(0, taken); // ended or adopted by another replica: its record, not ours
          this.stored(base);
          return base.value;
        }
        const proceeding = along?.proceed(base.value) ?? false;
        const noted = changes.reduce((record, change) => change(record), base.value);
        next = proceeding && along?.change ? along.change(noted) : noted;
        this.known = undefined;
        const ops = proceeding && along ? along.ops : [];
        const revision = await this.operations.put(
          this.tenant,
          this.id,
          next,
          base.revision,
          base.value,
          ops,
        );
        this.known = { value: next, revision };
        this.noted.splice(0, taken);
        this.stored(this.known);
        return next;
      } catch (error) {
        if (error instanceof StoreUnavailableError && !along && (await outage.next())) {
          this.known = await this.operations.get(this.tenant, this.id).catch(() => undefined);
          if (next && this.alreadyIn(next, taken)) return next;
          continue;
        }
        if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw error;
        if (error.key !== this.operations.key(this.tenant, this.id)) throw error; // one of `along`
        // The store's client resends a write whose answer was lost; if the first one applied, the
        // resend finds it as a conflict. The changes are in: not to be made twice.
        this.known = await this.operations.get(this.tenant, this.id);
        if (next && this.alreadyIn(next, taken)) return next;
        await conflictBackoff(attempt);
      }
    }
  }
}
