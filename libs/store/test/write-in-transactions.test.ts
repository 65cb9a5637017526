import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { writeInTransactions, type TransactionOp } from "../src/index.js";

describe("writeInTransactions", () => {
  it("applies the ops in order, in transactions of at most maxTransactionOps", async () => {
    const seen: string[][] = [];
    const store = {
      maxTransactionOps: 3,
      transaction: (ops: readonly TransactionOp[]) => {
        seen.push(ops.map((o) => o.key));
        return Promise.resolve({ revision: seen.length });
      },
    };
    const ops: TransactionOp[] = Array.from({ length: 7 }, (_, i) => ({ op: "delete", key: `k${i}` }));
    await writeInTransactions(store, ops);
    assert.deepEqual(seen, [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]);
    await writeInTransactions(store, []);
    assert.equal(seen.length, 3);
  });
});
