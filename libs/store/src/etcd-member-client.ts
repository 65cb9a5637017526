// One etcd member's calls that the store makes (KV Range and Txn, Maintenance Status), on a
// grpc-js channel of its own, with etcd's API protos as the etcd3 package ships them.
//
// Why not etcd3's client: per call it ran its connection pool (a shuffled-hosts generator, auth
// metadata, two cockatiel policies even when both are no-ops, four promise layers) and decoded
// every 64-bit field into a decimal string (a RangeResponse's header and each key's revisions,
// 8 strings for a one-key read). Here a call is one call on the grpc-js channel (Channel.createCall,
// as grpc-js's own Client makes it, without the Client's per-call interceptor chain, event emitter
// and caller stack trace), the request encoded by protobufjs from the object as built (enums as
// numbers, no fromObject copy) and the answer read straight from the decoded message into the
// fields the store uses: revisions as numbers (they stay far below 2^53), member ids, which use
// all 64 bits, as strings.
import { createRequire } from "node:module";
import { Channel, Metadata, credentials, status, type StatusObject } from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** etcd's Compare.CompareTarget values that the store compares (rpc.proto). */
export const CompareTarget = { Create: 1, Mod: 2 } as const;
/** etcd's Compare.CompareResult.Equal. */
export const COMPARE_EQUAL = 0;

/** A Compare of a Txn: a key's create or mod revision equal to a value. */
export interface EtcdCompare {
  key: Buffer;
  target: (typeof CompareTarget)[keyof typeof CompareTarget];
  result: typeof COMPARE_EQUAL;
  create_revision?: number;
  mod_revision?: number;
}

export interface EtcdRangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: number;
  keys_only?: boolean;
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

/** A decoded int64: a Long while protobufjs has the long package (it does), else a number. */
type Int64 = number | { toNumber(): number; toString(): string };
const toNumber = (value: Int64 | null | undefined): number =>
  value == null ? 0 : typeof value === "number" ? value : value.toNumber();

// The decoded messages' fields the store reads (protobufjs gives every field, absent ones at
// their default from the message's prototype).
interface DecodedHeader {
  revision: Int64;
  member_id: Int64;
}
interface DecodedKeyValue {
  key: Buffer;
  /** An empty value decodes as the prototype's default, an empty array. */
  value: Buffer | [];
  mod_revision: Int64;
}
interface DecodedRange {
  header: DecodedHeader | null;
  kvs: DecodedKeyValue[];
  more: boolean;
}
interface DecodedTxn {
  header: DecodedHeader | null;
  succeeded: boolean;
  responses: Array<{
    response_range: DecodedRange | null;
    response_delete_range: { deleted: Int64 } | null;
  }>;
}
interface DecodedStatus {
  header: DecodedHeader | null;
  leader: Int64;
}

const keyValueOf = (kv: DecodedKeyValue): EtcdKeyValue => ({
  key: kv.key,
  value: kv.value.length > 0 ? (kv.value as Buffer) : undefined,
  mod_revision: toNumber(kv.mod_revision),
});
const rangeOf = (range: DecodedRange): EtcdRangeResponse => ({
  header: { revision: toNumber(range.header?.revision) },
  kvs: range.kvs.map(keyValueOf),
  more: range.more,
});
const txnOf = (txn: DecodedTxn): EtcdTxnResponse => ({
  header: { revision: toNumber(txn.header?.revision) },
  succeeded: txn.succeeded,
  responses: txn.responses.map((op) => ({
    ...(op.response_range ? { response_range: rangeOf(op.response_range) } : {}),
    ...(op.response_delete_range
      ? { response_delete_range: { deleted: toNumber(op.response_delete_range.deleted) } }
      : {}),
  })),
});
const statusOf = (answer: DecodedStatus): EtcdStatusResponse => ({
  header: { member_id: String(answer.header?.member_id ?? "0") },
  leader: String(answer.leader),
});

/** How a method's request is written and its answer read. */
interface Method<Request, Response> {
  path: string;
  /** A Buffer: protobufjs writes into one under Node. */
  encode(request: Request): Buffer;
  decode(answer: Buffer): Response;
}

interface EtcdMethods {
  range: Method<EtcdRangeRequest, EtcdRangeResponse>;
  txn: Method<EtcdTxnRequest, EtcdTxnResponse>;
  status: Method<object, EtcdStatusResponse>;
}
let methods: EtcdMethods | undefined;

/**
 * etcd's KV and Maintenance methods, loaded at the first connection: a process that never dials
 * etcd (a kernel tier's guest, bundled without the etcd3 package) does not need its protos.
 */
function etcdMethods(): EtcdMethods {
  if (methods) return methods;
  const root = new protobuf.Root().loadSync(createRequire(import.meta.url).resolve("etcd3/proto/rpc.proto"), {
    keepCase: true,
  });
  const method = <Request, Decoded, Response>(
    path: string,
    request: string,
    response: string,
    read: (decoded: Decoded) => Response,
  ): Method<Request, Response> => {
    const requestType = root.lookupType(request);
    const responseType = root.lookupType(response);
    return {
      path,
      encode: (message) => requestType.encode(message as protobuf.Message).finish() as Buffer,
      decode: (answer) => read(responseType.decode(answer) as unknown as Decoded),
    };
  };
  methods = {
    range: method(
      "/etcdserverpb.KV/Range",
      "etcdserverpb.RangeRequest",
      "etcdserverpb.RangeResponse",
      rangeOf,
    ),
    txn: method("/etcdserverpb.KV/Txn", "etcdserverpb.TxnRequest", "etcdserverpb.TxnResponse", txnOf),
    status: method(
      "/etcdserverpb.Maintenance/Status",
      "etcdserverpb.StatusRequest",
      "etcdserverpb.StatusResponse",
      statusOf,
    ),
  };
  return methods;
}
// A member that went away is dialled again within a second of its return (grpc-js's backoff
// would otherwise grow to two minutes while it is down).
const CHANNEL_OPTIONS = { "grpc.max_reconnect_backoff_ms": 1_000 };

/** A client of the member at `endpoint` ("http://host:port"). */
export function connectEtcdMember(endpoint: string): EtcdMemberClient {
  const { range, txn, status: memberStatus } = etcdMethods();
  const channel = new Channel(
    endpoint.replace(/^http:\/\//, ""),
    credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  // One unary call as grpc-js's Client makes it: start, read, send, half-close; the answer is the
  // one message before an OK status.
  const call = <Request, Response>(method: Method<Request, Response>, request: Request, deadline: number) =>
    new Promise<Response>((resolve, reject) => {
      const encoded = method.encode(request);
      const stream = channel.createCall(method.path, deadline, undefined, null, undefined);
      let answer: Buffer | undefined;
      stream.start(new Metadata(), {
        onReceiveMetadata: () => {},
        onReceiveMessage: (message: Buffer) => (answer = message),
        onReceiveStatus: ({ code, details }: StatusObject) => {
          if (code !== status.OK) reject(new EtcdCallError(code, details));
          else if (answer === undefined)
            reject(new EtcdCallError(status.UNIMPLEMENTED, "No message received"));
          else {
            try {
              resolve(method.decode(answer));
            } catch (error) {
              reject(new EtcdCallError(status.INTERNAL, `Response message parsing error: ${String(error)}`));
            }
          }
        },
      });
      stream.startRead();
      stream.sendMessageWithContext({}, encoded);
      stream.halfClose();
    });
  return {
    range: (request, deadline) => call(range, request, deadline),
    txn: (request, deadline) => call(txn, request, deadline),
    status: (deadline) => call(memberStatus, {}, deadline),
    close: () => channel.close(),
  };
}
