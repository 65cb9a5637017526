// A transaction checked and split into what every backend needs: the conditions, in the caller's
// order, and the writes with their values already encoded. Both backends go through this, so a
// transaction is refused, or its conflict reported, the same way by each.

import { StoreConflictError, StoreInvalidArgumentError } from "./store-error.js";
import { validateKey } from "./store-key.js";
import { MAX_TRANSACTION_OPS } from "./store-limits.js";
import type { ExpectedRevision, StoreValue, TransactionOp, WriteCondition } from "./store.js";
import { encodeValue } from "./value-codec.js";

export interface RevisionCondition {
  key: string;
  expected: ExpectedRevision;
}

export type PlannedWrite = { kind: "put"; key: string; value: Buffer } | { kind: "delete"; key: string };

export interface TransactionPlan {
  conditions: RevisionCondition[];
  writes: PlannedWrite[];
}

export function planTransaction(
  ops: readonly TransactionOp[],
  maxOps: number = MAX_TRANSACTION_OPS,
): TransactionPlan {
  if (ops.length > maxOps) {
    throw new StoreInvalidArgumentError(`transaction has ${ops.length} ops, more than ${maxOps}`);
  }
  const conditions: RevisionCondition[] = [];
  const writes: PlannedWrite[] = [];
  const written = new Set<string>();
  ops.forEach((op, index) => {
    validateKey(op.key);
    if (op.ifRevision !== undefined) {
      validateExpectedRevision(op.ifRevision);
      conditions.push({ key: op.key, expected: op.ifRevision });
    }
    switch (op.op) {
      case "check":
        if (op.ifRevision === undefined) {
          throw new StoreInvalidArgumentError(`transaction op ${index}: check needs ifRevision`);
        }
        return;
      case "put":
      case "delete":
        if (written.has(op.key)) {
          throw new StoreInvalidArgumentError(
            `transaction op ${index}: key '${op.key}' is already written by an earlier op`,
          );
        }
        written.add(op.key);
        writes.push(
          op.op === "put"
            ? { kind: "put", key: op.key, value: encodeValue(op.value) }
            : { kind: "delete", key: op.key },
        );
        return;
      default:
        throw new StoreInvalidArgumentError(
          `transaction op ${index}: unknown op ${JSON.stringify((op as { op: unknown }).op)}`,
        );
    }
  });
  return { conditions, writes };
}

export function validateExpectedRevision(expected: ExpectedRevision): void {
  if (expected === "absent") return;
  if (!Number.isSafeInteger(expected) || expected < 1) {
    throw new StoreInvalidArgumentError(
      `ifRevision must be "absent" or a positive integer, got ${JSON.stringify(expected)}`,
    );
  }
}

/** The conflict for the first condition that `actual` does not satisfy, if any. */
export function firstConflict(
  conditions: readonly RevisionCondition[],
  actual: (key: string) => number | "absent",
): StoreConflictError | undefined {
  for (const { key, expected } of conditions) {
    const found = actual(key);
    if (found !== expected) return new StoreConflictError(key, expected, found);
  }
  return undefined;
}

/** The plan of a single `put`. */
export function planPut(
  key: string,
  value: StoreValue,
  options: WriteCondition | undefined,
): TransactionPlan {
  validateKey(key);
  return { conditions: conditionOf(key, options), writes: [{ kind: "put", key, value: encodeValue(value) }] };
}

/** The plan of a single `delete`. */
export function planDelete(key: string, options: WriteCondition | undefined): TransactionPlan {
  validateKey(key);
  return { conditions: conditionOf(key, options), writes: [{ kind: "delete", key }] };
}

function conditionOf(key: string, options: WriteCondition | undefined): RevisionCondition[] {
  const expected = options?.ifRevision;
  if (expected === undefined) return [];
  validateExpectedRevision(expected);
  return [{ key, expected }];
}
