import { stateError, type StateFormat } from "./state-bytes.js";

/**
 * A pre-copy delta's view of one keyed list of a saved state (issue 14): the records that changed
 * or appeared since the previous read, and the keys that went away, both ascending by key.
 */
export interface KeyedChanges<T> {
  changed: T[];
  removed: number[];
}

/** Two non-primitive values of a record: bytes, tuples or nested records. */
function sameObject(x: object, y: object): boolean {
  if (x instanceof Uint8Array) {
    if (!(y instanceof Uint8Array) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  if (Array.isArray(x)) {
    if (!Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!sameValue(x[i], y[i])) return false;
    return true;
  }
  return sameRecord(x, y);
}

function sameValue(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  return typeof x === "object" && x !== null && typeof y === "object" && y !== null && sameObject(x, y);
}

/**
 * Saved-state records are plain data (numbers, bigints, booleans, bytes, tuples, small objects).
 * Written without allocating: the diff runs it once per record of the state (issue 14's stop).
 */
export function sameRecord<T extends object>(a: T, b: T): boolean {
  let keys = 0;
  for (const name in a) {
    keys++;
    if (!sameValue(a[name], b[name])) return false;
  }
  for (const _ in b) keys--;
  return keys === 0;
}

/**
 * Adds one key's change to `changes`: from `before` (the record last handed out) to `now` (the
 * record now; undefined: none), removed, changed or appeared. False when there is none. Callers
 * visit keys ascending, so the lists stay ascending.
 */
export function addKeyedChange<T extends object>(
  changes: KeyedChanges<T>,
  key: number,
  before: T | undefined,
  now: T | undefined,
): boolean {
  if (now === undefined) {
    if (before === undefined) return false;
    changes.removed.push(key);
  } else if (before === undefined || !sameRecord(before, now)) changes.changed.push(now);
  else return false;
  return true;
}

export const noChanges = (c: KeyedChanges<unknown>): boolean =>
  c.changed.length === 0 && c.removed.length === 0;

/**
 * `base` with `changes` applied, ascending by `key` (one merge pass). A removal of a key `base`
 * does not hold, or a key both changed and removed, is the format's INVALID_ARGUMENT
 * STATE_DELTA_MISMATCH on `<list>.removed` / `<list>.changed`.
 */
export function mergeKeyed<T>(
  base: readonly T[],
  changes: KeyedChanges<T>,
  key: (record: T) => number,
  list: string,
  format: StateFormat,
): T[] {
  const mismatch = (field: string, message: string) =>
    stateError(format, "STATE_DELTA_MISMATCH", field, message);
  const out: T[] = [];
  let c = 0;
  let r = 0;
  const { changed, removed } = changes;
  for (const record of base) {
    const k = key(record);
    while (c < changed.length && key(changed[c]!) < k) out.push(changed[c++]!);
    if (r < removed.length && removed[r]! < k)
      throw mismatch(`${list}.removed`, `${removed[r]} is not in the state the delta applies to`);
    if (r < removed.length && removed[r] === k) {
      r++;
      if (c < changed.length && key(changed[c]!) === k)
        throw mismatch(`${list}.changed`, `${k} is both changed and removed`);
    } else if (c < changed.length && key(changed[c]!) === k) out.push(changed[c++]!);
    else out.push(record);
  }
  if (r < removed.length)
    throw mismatch(`${list}.removed`, `${removed[r]} is not in the state the delta applies to`);
  while (c < changed.length) out.push(changed[c++]!);
  return out;
}
