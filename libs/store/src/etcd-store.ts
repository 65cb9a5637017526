// The shared Store: etcd v3, for several gateways and hosts that share one registry.
//
// Every store key lives under `prefix` in etcd, so deployments can share one cluster. A write is
// one etcd Txn: the conditions become compares (a revision: `mod_revision ==`; "absent":
// `create_revision == 0`), the writes its success branch, and its failure branch reads the
// conditioned keys so the StoreConflictError can say what it found, all at one etcd revision.
// Store revisions are etcd revisions (mod_revision of an entry, header.revision of a write).
//
// Failures of the cluster (no leader, no quorum, connection refused, deadline passed) become
// StoreUnavailableError. Calls go to the leader (EtcdMembers); a call that failed as unavailable is
// tried again on the leader the members name next (up to 3 attempts): if the first attempt of a
// conditional write did apply but its answer was lost, the retry reports a StoreConflictError
// whose `actual` is that write's revision.

import { status } from "@grpc/grpc-js";
import {
  COMPARE_EQUAL,
  CompareTarget,
  EtcdCallError,
  type EtcdKeyValue,
  type EtcdRangeRequest,
  type EtcdRequestOp,
  type EtcdTxnRequest,
  type EtcdTxnResponse,
} from "./etcd-member-client.js";
import { EtcdMembers } from "./etcd-members.js";
import { decodePageToken, encodePageToken, resolvePageSize } from "./page-token.js";
import { StoreError, StoreInvalidArgumentError, StoreUnavailableError } from "./store-error.js";
import { prefixRangeEnd, validateKey, validatePrefix } from "./store-key.js";
import {
  firstConflict,
  planDelete,
  planPut,
  planTransaction,
  type TransactionPlan,
} from "./transaction-plan.js";
import type {
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
import { decodeValue } from "./value-codec.js";
import { MAX_TRANSACTION_OPS } from "./store-limits.js";

export interface EtcdStoreOptions {
  /** Client URLs of the cluster's members, e.g. ["http://10.0.0.1:2379"]. */
  endpoints: string[];
  /**
   * Prepended to every key in etcd, e.g. "vplane/prod/". Printable ASCII; "" uses the whole
   * keyspace. Equivalent to etcdctl's --prefix namespacing (etcd's grpc-proxy --namespace).
   */
  prefix: string;
  /** Deadline of each etcd call, in milliseconds. Default 5000. */
  callTimeoutMs?: number;
}

const ALL_KEYS_END = Buffer.from([0]);
const EMPTY = Buffer.alloc(0);

export class EtcdStore implements Store {
  readonly prefix: string;
  readonly maxTransactionOps = MAX_TRANSACTION_OPS;
  private readonly members: EtcdMembers;
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    validatePrefix(options.prefix);
    if (options.endpoints.length === 0)
      throw new StoreInvalidArgumentError("etcd store needs at least one endpoint");
    this.prefix = options.prefix;
    this.members = EtcdMembers.connect(options.endpoints, options.callTimeoutMs ?? 5000);
  }

  get(key: string): Promise<StoreEntry | undefined> {
    return this.call(async () => {
      validateKey(key);
      const request: EtcdRangeRequest = { key: this.etcdKey(key) };
      const response = await this.members.run((client, deadline) => client.range(request, deadline));
      const kv = response.kvs?.[0];
      return kv && this.entryOf(kv);
    });
  }

  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.call(async () => {
      validatePrefix(prefix);
      const pageSize = resolvePageSize(options);
      const after = decodePageToken(prefix, options?.pageToken);
      const fullPrefix = this.prefix + prefix;
      const end = prefixRangeEnd(fullPrefix);
      const request: EtcdRangeRequest = {
        // The smallest key after `after` is `after` + NUL; no store key contains NUL.
        key: after === undefined ? Buffer.from(fullPrefix) : Buffer.from(this.prefix + after + "\0"),
        range_end: end === undefined ? ALL_KEYS_END : Buffer.from(end),
        limit: pageSize,
      };
      const response = await this.members.run((client, deadline) => client.range(request, deadline));
      const entries = (response.kvs ?? []).map((kv) => this.entryOf(kv));
      const last = entries.at(-1);
      return response.more && last
        ? { entries, nextPageToken: encodePageToken(prefix, last.key) }
        : { entries };
    });
  }

  put(key: string, value: StoreValue, options?: WriteCondition): Promise<number> {
    return this.call(async () => (await this.apply(planPut(key, value, options))).revision);
  }

  delete(key: string, options?: WriteCondition): Promise<boolean> {
    return this.call(async () => (await this.apply(planDelete(key, options))).deleted[0] ?? false);
  }

  /** Every write is durable when etcd applies it (a quorum's fsync): "deferred" changes nothing. */
  transaction(ops: readonly TransactionOp[], _options?: WriteOptions): Promise<TransactionResult> {
    return this.call(async () => ({ revision: (await this.apply(planTransaction(ops))).revision }));
  }

  /** Nothing to flush: what etcd applied is durable. */
  sync(): Promise<void> {
    return this.call(() => Promise.resolve());
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.members.close();
    }
    return Promise.resolve();
  }

  private async apply(plan: TransactionPlan): Promise<{ revision: number; deleted: boolean[] }> {
    const conditionedKeys = [...new Set(plan.conditions.map((condition) => condition.key))];
    const request: EtcdTxnRequest = {
      compare: plan.conditions.map(({ key, expected }) =>
        expected === "absent"
          ? {
              key: this.etcdKey(key),
              target: CompareTarget.Create,
              result: COMPARE_EQUAL,
              create_revision: 0,
            }
          : {
              key: this.etcdKey(key),
              target: CompareTarget.Mod,
              result: COMPARE_EQUAL,
              mod_revision: expected,
            },
      ),
      success: plan.writes.map((write): EtcdRequestOp =>
        write.kind === "put"
          ? { request_put: { key: this.etcdKey(write.key), value: write.value } }
          : { request_delete_range: { key: this.etcdKey(write.key) } },
      ),
      failure: conditionedKeys.map((key) => ({ request_range: { key: this.etcdKey(key), keys_only: true } })),
    };
    const response = await this.members.run((client, deadline) => client.txn(request, deadline));
    if (response.succeeded) {
      const deleted = plan.writes
        .map((write, index) => ({ write, response: response.responses?.[index] }))
        .filter(({ write }) => write.kind === "delete")
        .map(({ response }) => (response?.response_delete_range?.deleted ?? 0) > 0);
      return { revision: response.header.revision, deleted };
    }
    const actual = new Map(conditionedKeys.map((key, index) => [key, revisionIn(response, index)]));
    const conflict = firstConflict(plan.conditions, (key) => actual.get(key) ?? "absent");
    throw conflict ?? new StoreError("etcd refused the transaction but every condition holds");
  }

  private etcdKey(key: string): Buffer {
    return Buffer.from(this.prefix + key);
  }

  private entryOf(kv: EtcdKeyValue): StoreEntry {
    return {
      key: kv.key.toString("latin1").slice(this.prefix.length),
      value: decodeValue(kv.value ?? EMPTY),
      revision: kv.mod_revision ?? 0,
    };
  }

  private async call<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError("etcd store is closed");
    try {
      return await work();
    } catch (error) {
      throw etcdError(error);
    }
  }
}

/** The revision of the key the failure branch's `index`-th read found. */
function revisionIn(response: EtcdTxnResponse, index: number): number | "absent" {
  const kv = response.responses?.[index]?.response_range?.kvs?.[0];
  return kv ? (kv.mod_revision ?? 0) : "absent";
}

function etcdError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof EtcdCallError && error.code === status.INVALID_ARGUMENT) {
    return new StoreInvalidArgumentError(`etcd refused the request: ${detail}`, { cause: error });
  }
  return new StoreUnavailableError(`etcd unavailable: ${detail}`, { cause: error });
}
