// The public surface of @vplane/store.
export type {
  ExpectedRevision,
  JsonValue,
  ListOptions,
  ListPage,
  Store,
  StoreEntry,
  StoreValue,
  TransactionOp,
  TransactionResult,
  WriteCondition,
  WriteOptions,
} from "./store.js";
export {
  StoreConflictError,
  StoreError,
  StoreInvalidArgumentError,
  StoreUnavailableError,
} from "./store-error.js";
export {
  DEFAULT_PAGE_SIZE,
  MAX_KEY_LENGTH,
  MAX_PAGE_SIZE,
  MAX_SQLITE_TRANSACTION_OPS,
  MAX_TRANSACTION_OPS,
  MAX_VALUE_BYTES,
} from "./store-limits.js";
export { listAll } from "./list-all.js";
export { writeInTransactions } from "./write-in-transactions.js";
export { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
export { EtcdStore, type EtcdStoreOptions } from "./etcd-store.js";
export { openStore, parseStoreUrl, type StoreLocation } from "./store-url.js";
// For tests of this package and of its users (the gateway): a throwaway loopback etcd.
export {
  etcdTestsSkipReason,
  findEtcdBinary,
  freeLoopbackPorts,
  startEtcdForTests,
  type EtcdTestServer,
  type EtcdTestServerOptions,
} from "./testing/etcd-server.js";
export { EtcdCluster, PATIENT_RAFT, type RaftTiming } from "./testing/etcd-cluster.js";
