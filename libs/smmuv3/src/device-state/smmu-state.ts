import { SmmuError } from "../smmu-error.js";
import type { SmmuEvent } from "../event-record.js";
import type { SmmuFeatures } from "../features.js";
import type { MsiBinding, Stage2Mapping } from "../stage2-domain.js";
import type { PageRequest } from "../page-request-queue.js";
import type { GuestStage1 } from "../stream-table-entry.js";
import type { GranuleBits } from "../translation-granule.js";

/**
 * The migrated state of one virtual SMMU (issue 6, "Device state" SMMUv3 part): what the guest
 * can observe and what the host configured for it, without caches (IOTLB, config cache; digest
 * §4.3), which start empty on the destination. The VMID is the host's and is not part of it.
 *
 * Binary layout, format version 1. Integers little-endian (the SMMU's byte order); every
 * reserved byte is zero; lists are a u32 count then fixed-size entries; nothing follows the
 * last list.
 *
 * ```
 * header (40 bytes)
 *   u32 format_version = 1      u32 magic = 0x33554d53 (bytes "SMU3")
 *   u8  stream_id_bits (IDR1.SIDSIZE)   u8 substream_id_bits (IDR1.SSIDSIZE)
 *   u8  output_address_bits (IDR5.OAS)  u8 stage2_granule_bits (12, 14, 16)
 *   u16 feature_flags: bit0 GRAN4K, bit1 GRAN16K, bit2 GRAN64K, bit3 ASID16, bit4 VMID16,
 *       bit5 RIL, bit6 CD2L, bit7 ST_LEVEL 2-level, bit8 stall, bit9 ATS, bit10 PRI
 *   u16 reserved
 *   u32 event_queue_depth   u32 page_request_capacity   u32 page_request_timeout_ms
 *   u32 reserved
 *   u64 guest_memory_bytes
 * counters (32 bytes)
 *   u32 event_next_sequence (vEVENTQ sequence, 0..2^31-1)   u32 next_cookie (page requests)
 *   u64 events_reported   u64 events_dropped
 *   u64 delivered (messages handed to the event stream so far: events, lost markers, page requests)
 * pasid_table (16 bytes): the seed form's domain-wide stage 1
 *   u8 kind (0 none, 1 abort, 2 bypass, 3 translate)  u8[7] reserved  u64 context_ptr (translate only)
 * msi (32 bytes)
 *   u8 bound  u8[7] reserved  u64 giova  u64 gpa  u64 size        (all zero when not bound)
 * mappings  u32 n, n × 32 bytes { u64 ipa, u64 host_address, u64 size, u8 perm (R 1, W 2), u8[7] }
 *                                                                                ascending ipa
 * devices   u32 n, n × 32 bytes { u32 stream_id, u32 virtual_stream_id,
 *                                 u8 flags (bit0 page_requests, bit1 guest_ste), u8[7],
 *                                 u64 ste0, u64 ste1 }   ascending stream_id; the iommufd guest
 *                                 STE words as the guest gave them (EATS kept), zero without one
 * events    u32 n, n × 48 bytes { u32 sequence, u8 kind (0 event, 1 lost-events marker), u8 id,
 *                                 u8 class, u8 reserved, u16 present, u16 flags, u16 stag,
 *                                 u16 reserved, u32 stream_id, u32 substream_id,
 *                                 u64 input_address, u64 ipa, u64 fetch_address }
 *                                 oldest first; `present` says which optional fields of the event
 *                                 are set (EVENT_FIELD bits), `flags` holds the boolean ones
 * page_requests u32 n, n × 48 bytes { u32 cookie, u32 stream_id, u32 virtual_stream_id,
 *                                 u32 substream_id, u16 group_id, u8 flags (PASID_VALID 1,
 *                                 LAST_PAGE 2), u8 perm, u8 held, u8[3], u32 remaining_ms,
 *                                 u32 reserved, u64 address, u64 events_before }   in the order raised; `held`:
 *                                 not yet delivered, goes out after the events reported before it
 *                                 (events_before = events_reported when it was raised)
 * ```
 */
export const SMMU_STATE_FORMAT_VERSION = 1;
/** Every integer of the format is little-endian, the SMMU's own byte order; a refused state is an SmmuError. */
export const SMMU_STATE_FORMAT = { littleEndian: true, error: SmmuError } as const;
export const SMMU_STATE_MAGIC = 0x3355_4d53;

export const STATE_SIZES = {
  header: 40,
  counters: 32,
  pasidTable: 16,
  msi: 32,
  mapping: 32,
  device: 32,
  event: 48,
  pageRequest: 48,
} as const;

/** feature_flags bits, in SmmuFeatures' boolean order. */
export const FEATURE_FLAGS = [
  "granule4K",
  "granule16K",
  "granule64K",
  "asid16",
  "vmid16",
  "rangeInvalidation",
  "twoLevelCdTable",
  "twoLevelStreamTable",
  "stall",
  "ats",
  "pri",
] as const satisfies readonly (keyof SmmuFeatures)[];

/** The event record's optional fields, as `present` bits; the boolean ones also have a `flags` bit. */
export const EVENT_FIELDS = [
  "substreamId",
  "stag",
  "stall",
  "privileged",
  "instruction",
  "read",
  "stage2",
  "eventClass",
  "ttRead",
  "inputAddress",
  "ipa",
  "fetchAddress",
] as const satisfies readonly (keyof SmmuEvent)[];
export const EVENT_BOOLEANS = ["stall", "privileged", "instruction", "read", "stage2", "ttRead"] as const;

export const PASID_KIND = { none: 0, abort: 1, bypass: 2, translate: 3 } as const;

export interface DeviceState {
  streamId: number;
  virtualStreamId: number;
  pageRequests: boolean;
  /** iommufd guest STE words as given (validated again on import), if installed. */
  guestSte: [bigint, bigint] | undefined;
}

export type EventState =
  { sequence: number; lost: true } | { sequence: number; lost: false; event: SmmuEvent };

/** A page request waiting for its response; its clock fields become the time it has left. */
export interface PageRequestState extends Omit<PageRequest, "raisedAt" | "deadline"> {
  /** Time left before it expires, counted from when the SMMU stopped (or it was raised, if later). */
  remainingMs: number;
  /** Raised but not yet delivered to the event stream. */
  held: boolean;
  /** events_reported when it was raised: it is delivered after the events reported before it. */
  eventsBefore: number;
}

export interface SmmuState {
  features: SmmuFeatures;
  stage2GranuleBits: GranuleBits;
  eventQueueDepth: number;
  pageRequestCapacity: number;
  pageRequestTimeoutMs: number;
  guestMemoryBytes: number;
  eventSequence: number;
  nextCookie: number;
  eventsReported: number;
  eventsDropped: number;
  delivered: number;
  /** The seed form's stage 1 ("invalid" never occurs there). */
  pasidTable: Exclude<GuestStage1, { kind: "invalid" }> | undefined;
  msi: MsiBinding | undefined;
  mappings: Stage2Mapping[];
  devices: DeviceState[];
  events: EventState[];
  pageRequests: PageRequestState[];
}
