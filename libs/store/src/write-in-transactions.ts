import type { Store, TransactionOp } from "./store.js";

/**
 * Applies `ops` in order, in transactions of at most `store.maxTransactionOps` ops (etcd's
 * --max-txn-ops): each transaction is atomic, the whole is not. A writer that must be able to
 * tell a cut-short write puts what marks it complete in the last op.
 */
export async function writeInTransactions(
  store: Pick<Store, "transaction" | "maxTransactionOps">,
  ops: readonly TransactionOp[],
): Promise<void> {
  for (let i = 0; i < ops.length; i += store.maxTransactionOps)
    await store.transaction(ops.slice(i, i + store.maxTransactionOps));
}
