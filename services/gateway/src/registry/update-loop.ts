import { StoreConflictError, type Store, type TransactionOp } from "@vplane/store";
import { conflictBackoff, MAX_CONFLICT_RETRIES } from "./conflict-backoff.js";
import { asIs, putAlong, readRecord, type RecordForm, type Versioned } from "./typed-entry.js";

/**
 * Read-modify-write of one record under compare-and-swap, retried when another writer (another
 * request, another gateway replica) got there first. `mutate` returns the new value, or
 * undefined to write nothing; `form`: how the record is stored; `along`: more writes for the same
 * transaction, given the record before and after. Returns what is stored afterwards (undefined: no such record).
 */
export async function updateRecord<T>(
  store: Store,
  key: string,
  mutate: (current: T) => T | undefined,
  form: RecordForm<T> = asIs<T>(),
  along: (before: T, after: T) => TransactionOp[] = () => [],
): Promise<Versioned<T> | undefined> {
  for (let attempt = 0; ; attempt++) {
    const current = await readRecord<T>(store, key, form);
    if (!current) return undefined;
    const next = mutate(current.value);
    if (next === undefined) return current;
    try {
      const revision = await putAlong(
        store,
        key,
        form.write(next),
        current.revision,
        along(current.value, next),
      );
      return { value: next, revision };
    } catch (error) {
      if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw error;
      await conflictBackoff(attempt);
    }
  }
}
