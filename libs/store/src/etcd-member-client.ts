// One etcd member's calls that the store makes (KV Range and Txn, Maintenance Status), on a
// grpc-js channel of its own, with etcd's API protos as the etcd3 package ships them.
//
// Why not etcd3's client: per call it ran its connection pool (a shuffled-hosts generator, auth
// metadata, two cockatiel policies even when both are no-ops, four promise layers) and decoded
// every 64-bit field into a decimal string (a RangeResponse's header and each key's revisions,
// 8 strings for a one-key read). Here a call is one grpc-js unary call, and 64-bit fields decode
// to numbers (revisions stay far below 2^53); member ids, which use all 64 bits, stay strings.
import { createRequire } from "node:module";
import { Client, credentials, status, type MethodDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";

/** A Compare of a Txn: a key's create or mod revision equal to a value. */
export interface EtcdCompare {
  key: Buffer;
  target: "Create" | "Mod";
  result: "Equal";
  create_revision?: number;
  mod_revision?: number;
}

export interface EtcdRangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: number;
  keys_only?: boolean;
  /** Only keys whose mod_revision is at least this (etcd still reads the whole range). */
  min_mod_revision?: number;
}

export type EtcdRequestOp =
  | { request_put: { key: Buffer; value: Buffer } }
  | { request_delete_range: { key: Buffer } }
  | { request_range: EtcdRangeRequest };

export interface EtcdTxnRequest {
  compare: EtcdCompare[];
  success: EtcdRequestOp[];
  failure: EtcdRequestOp[];
}

/** A stored key as etcd answers it. Fields etcd left at their zero value are absent. */
export interface EtcdKeyValue {
  key: Buffer;
  value?: Buffer;
  mod_revision?: number;
}

export interface EtcdRangeResponse {
  header: { revision: number };
  kvs?: EtcdKeyValue[];
  more?: boolean;
}

export interface EtcdTxnResponse {
  header: { revision: number };
  succeeded?: boolean;
  responses?: Array<{
    response_range?: EtcdRangeResponse;
    response_delete_range?: { deleted?: number };
  }>;
}

export interface EtcdStatusResponse {
  header: { member_id: string };
  /** The leader's member id, "0" or absent while there is none. */
  leader?: string;
}

/** What EtcdMembers and EtcdStore ask of one member. */
export interface EtcdMemberClient {
  range(request: EtcdRangeRequest, deadline: number): Promise<EtcdRangeResponse>;
  txn(request: EtcdTxnRequest, deadline: number): Promise<EtcdTxnResponse>;
  status(deadline: number): Promise<EtcdStatusResponse>;
  close(): void;
}

/** An etcd call's failure: the gRPC status code and etcd's message. */
export class EtcdCallError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = "EtcdCallError";
  }
}

// The codes etcd3 retried ("recoverable"): the member or the path to it failed, not the request.
const RECOVERABLE = new Set<status>([
  status.CANCELLED,
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  status.INTERNAL,
  status.UNAVAILABLE,
]);

/** True when another try, on this member or another, may succeed. */
export function isRecoverable(error: unknown): boolean {
  return error instanceof EtcdCallError && RECOVERABLE.has(error.code);
}

const DECODING: Options = { keepCase: true, enums: String, defaults: false, oneofs: false };
type Methods = Record<string, MethodDefinition<unknown, unknown>>;
let methods: { kv: Methods; maintenance: Methods } | undefined;

/**
 * etcd's KV and Maintenance methods, loaded at the first connection: a process that never dials
 * etcd (a kernel tier's guest, bundled without the etcd3 package) does not need its protos.
 */
function etcdMethods(): { kv: Methods; maintenance: Methods } {
  if (methods) return methods;
  const proto = createRequire(import.meta.url).resolve("etcd3/proto/rpc.proto");
  methods = {
    kv: loadSync(proto, { ...DECODING, longs: Number })["etcdserverpb.KV"] as Methods,
    maintenance: loadSync(proto, { ...DECODING, longs: String })["etcdserverpb.Maintenance"] as Methods,
  };
  return methods;
}
// A member that went away is dialled again within a second of its return (grpc-js's backoff
// would otherwise grow to two minutes while it is down).
const CHANNEL_OPTIONS = { "grpc.max_reconnect_backoff_ms": 1_000 };

/** A client of the member at `endpoint` ("http://host:port"). */
export function connectEtcdMember(endpoint: string): EtcdMemberClient {
  const { kv, maintenance } = etcdMethods();
  const client = new Client(
    endpoint.replace(/^http:\/\//, ""),
    credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  const call = <T>(method: MethodDefinition<unknown, unknown>, request: unknown, deadline: number) =>
    new Promise<T>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        { deadline },
        (error: ServiceError | null, response?: unknown) => {
          if (error) reject(new EtcdCallError(error.code, error.details || error.message));
          else resolve(response as T);
        },
      );
    });
  return {
    range: (request, deadline) => call(kv["Range"]!, request, deadline),
    txn: (request, deadline) => call(kv["Txn"]!, request, deadline),
    status: (deadline) => call(maintenance["Status"]!, {}, deadline),
    close: () => client.close(),
  };
}
