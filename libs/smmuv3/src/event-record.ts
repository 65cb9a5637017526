import { bitsOf, fieldOf } from "./bits.js";

/** Event numbers (digest §3.4; Linux arm-smmu-v3.h and QEMU smmuv3-internal.h agree). */
export const EventId = {
  F_UUT: 0x01,
  C_BAD_STREAMID: 0x02,
  F_STE_FETCH: 0x03,
  C_BAD_STE: 0x04,
  F_BAD_ATS_TREQ: 0x05,
  F_STREAM_DISABLED: 0x06,
  F_TRANS_FORBIDDEN: 0x07,
  C_BAD_SUBSTREAMID: 0x08,
  F_CD_FETCH: 0x09,
  C_BAD_CD: 0x0a,
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
  F_TLB_CONFLICT: 0x20,
  F_CFG_CONFLICT: 0x21,
  E_PAGE_REQUEST: 0x24,
} as const;
export type EventId = (typeof EventId)[keyof typeof EventId];

const EVENT_NAMES = new Map<number, string>(Object.entries(EventId).map(([name, id]) => [id, name]));
/** "F_TRANSLATION" for 0x10; "EVENT_0x.." for a number the digest does not name. */
export function eventName(id: number): string {
  return EVENT_NAMES.get(id) ?? `EVENT_0x${id.toString(16)}`;
}

/** Event CLASS field (dw1[41:40]): which structure the faulting access was for. */
export const EventClass = { CD: 0, TT: 1, IN: 2 } as const;
export type EventClass = (typeof EventClass)[keyof typeof EventClass];

/**
 * One event record, decoded. Which fields an event carries follows QEMU (digest §3.4): the
 * page-table faults carry everything; C_BAD_STREAMID/C_BAD_STE/C_BAD_CD only SSID/SSV;
 * F_STE_FETCH/F_CD_FETCH the SSID and the fetch address.
 */
export interface SmmuEvent {
  id: EventId;
  /** StreamID as the record carries it: the physical one, or the virtual one once forwarded. */
  streamId: number;
  /** SubstreamID when the transaction had one (SSV = 1). */
  substreamId?: number;
  /** Stall tag of a stalled transaction (STAG, dw1[15:0]); the page request's group id. */
  stag?: number;
  /** Stall (dw1[31]): the transaction is stalled and waits for a response. */
  stall?: boolean;
  /** PnU (dw1[33]): privileged. */
  privileged?: boolean;
  /** InD (dw1[34]): instruction fetch. */
  instruction?: boolean;
  /** RnW (dw1[35]): true for a read. */
  read?: boolean;
  /** S2 (dw1[39]): the fault was taken at stage 2. */
  stage2?: boolean;
  /** CLASS (dw1[41:40]). */
  eventClass?: EventClass;
  /** TT_READ (dw1[44]): a table walk read (class TT). */
  ttRead?: boolean;
  /** InputAddr (dw2), 64 bits. */
  inputAddress?: bigint;
  /** IPA of a stage-2 fault (dw3[51:12], page aligned in the record). */
  ipa?: number;
  /** FetchAddr (dw3[51:3]) of F_STE_FETCH, F_CD_FETCH and F_WALK_EABT. */
  fetchAddress?: number;
}

/** Events whose record carries the IPA in dw3 (the page-table faults at stage 2). */
function carriesIpa(e: SmmuEvent): boolean {
  return e.ipa !== undefined && e.fetchAddress === undefined;
}

/** Encodes the 32-byte architectural event record (four little-endian 64-bit words; digest §3.4). */
export function encodeEventRecord(e: SmmuEvent): Uint8Array {
  const ssv = e.substreamId !== undefined;
  const dw0 =
    fieldOf(e.id, 7, 0) |
    fieldOf(ssv ? 1 : 0, 11, 11) |
    fieldOf(e.substreamId ?? 0, 31, 12) |
    fieldOf(e.streamId, 63, 32);
  const dw1 =
    fieldOf(e.stag ?? 0, 15, 0) |
    fieldOf(e.stall ? 1 : 0, 31, 31) |
    fieldOf(e.privileged ? 1 : 0, 33, 33) |
    fieldOf(e.instruction ? 1 : 0, 34, 34) |
    fieldOf(e.read ? 1 : 0, 35, 35) |
    fieldOf(e.stage2 ? 1 : 0, 39, 39) |
    fieldOf(e.eventClass ?? 0, 41, 40) |
    fieldOf(e.ttRead ? 1 : 0, 44, 44);
  const dw2 = BigInt.asUintN(64, e.inputAddress ?? 0n);
  let dw3 = 0n;
  if (e.fetchAddress !== undefined) dw3 = BigInt(e.fetchAddress) & ((1n << 52n) - 8n);
  else if (carriesIpa(e)) dw3 = BigInt(e.ipa!) & ((1n << 52n) - 4096n);
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, dw0, true);
  view.setBigUint64(8, dw1, true);
  view.setBigUint64(16, dw2, true);
  view.setBigUint64(24, dw3, true);
  return out;
}

/** The four 64-bit words of a record (for the iommufd vEVENT payload `__le64 evt[4]`). */
export function eventRecordWords(record: Uint8Array): [bigint, bigint, bigint, bigint] {
  const view = new DataView(record.buffer, record.byteOffset, 32);
  return [
    view.getBigUint64(0, true),
    view.getBigUint64(8, true),
    view.getBigUint64(16, true),
    view.getBigUint64(24, true),
  ];
}

/** Events whose record carries only SSID/SSV besides the StreamID (configuration errors). */
const SSID_ONLY: ReadonlySet<number> = new Set([
  EventId.C_BAD_STREAMID,
  EventId.C_BAD_STE,
  EventId.F_STREAM_DISABLED,
  EventId.C_BAD_SUBSTREAMID,
  EventId.C_BAD_CD,
]);

/**
 * Reads a 32-byte event record (as an SMMU, or iommufd's vEVENTQ payload, hands it over) back
 * into the fields encodeEventRecord writes, with the same presence rules: configuration errors
 * carry SSID/SSV only, F_STE_FETCH / F_CD_FETCH add the fetch address, every other event all of
 * dw1..dw3 (the IPA of a stage-2 fault; the fetch address of F_WALK_EABT).
 */
export function decodeEventRecord(record: Uint8Array): SmmuEvent {
  const [dw0, dw1, dw2, dw3] = eventRecordWords(record);
  const id = bitsOf(dw0, 7, 0) as EventId;
  const ssv = bitsOf(dw0, 11, 11) === 1;
  const base: SmmuEvent = {
    id,
    streamId: bitsOf(dw0, 63, 32),
    ...(ssv ? { substreamId: bitsOf(dw0, 31, 12) } : {}),
  };
  if (SSID_ONLY.has(id)) return base;
  if (id === EventId.F_STE_FETCH || id === EventId.F_CD_FETCH)
    return { ...base, fetchAddress: bitsOf(dw3, 51, 3) * 8 };
  const stage2 = bitsOf(dw1, 39, 39) === 1;
  return {
    ...base,
    ...(bitsOf(dw1, 31, 31) === 1 ? { stall: true, stag: bitsOf(dw1, 15, 0) } : {}),
    ...(bitsOf(dw1, 33, 33) === 1 ? { privileged: true } : {}),
    ...(bitsOf(dw1, 34, 34) === 1 ? { instruction: true } : {}),
    read: bitsOf(dw1, 35, 35) === 1,
    stage2,
    eventClass: bitsOf(dw1, 41, 40) as EventClass,
    ttRead: bitsOf(dw1, 44, 44) === 1,
    inputAddress: dw2,
    ...(id === EventId.F_WALK_EABT
      ? { fetchAddress: bitsOf(dw3, 51, 3) * 8 }
      : stage2
        ? { ipa: bitsOf(dw3, 51, 12) * 4096 }
        : {}),
  };
}
