import { StateReader, stateError as formatError } from "@vplane/model-kit";
import { EventId, type SmmuEvent } from "../event-record.js";
import { SEQUENCE_MASK } from "../event-queue.js";
import { granuleSupported, resolveFeatures, type SmmuFeatures } from "../features.js";
import { PageRequestFlags } from "../page-request-queue.js";
import { SmmuError } from "../smmu-error.js";
import { isGranuleBits } from "../translation-granule.js";
import {
  EVENT_BOOLEANS,
  EVENT_FIELDS,
  FEATURE_FLAGS,
  PASID_KIND,
  SMMU_STATE_FORMAT_VERSION,
  SMMU_STATE_FORMAT,
  SMMU_STATE_MAGIC,
  STATE_SIZES,
  type DeviceState,
  type EventState,
  type PageRequestState,
  type SmmuState,
} from "./smmu-state.js";

const KNOWN_EVENTS: ReadonlySet<number> = new Set(Object.values(EventId));
const MAX_GROUP_ID = 511;
const LIMIT_MAX = 2 ** 31;

const stateError = (reason: string, field: string, message: string) =>
  formatError(SMMU_STATE_FORMAT, reason, field, message);
const inconsistent = (field: string, message: string) => stateError("STATE_INCONSISTENT", field, message);
const malformed = (field: string, message: string) => stateError("STATE_MALFORMED", field, message);

/**
 * Decodes a format-version-1 SMMU state and checks everything that can be checked without
 * building the SMMU: the version first (an unknown one is refused before anything else is
 * read), the magic, every length, reserved bytes and flags, ranges, list order, the event
 * queue's sequence rules (vEVENTQ, digest §2.5) and the page requests against the devices.
 * What only a replay can check (mapping overlaps and backing, guest STE words, the MSI
 * doorbell) is checked by Smmu.importState. Every refusal is an SmmuError INVALID_ARGUMENT with
 * a STATE_* reason and the entry as `field`, e.g. "page_requests[2].group_id".
 */
export function decodeSmmuState(bytes: Uint8Array): SmmuState {
  const r = new StateReader(bytes, SMMU_STATE_FORMAT);
  const state = readSmmuState(r, SMMU_STATE_MAGIC, true);
  r.end();
  return state;
}

/**
 * Reads a state with `magic` from `r` (decodeSmmuState's checks). A pre-copy delta's (`complete`
 * false) holds only the devices that changed, so its page requests are not checked against
 * them here: the merged state is (smmu-delta.ts).
 */
export function readSmmuState(r: StateReader, magic: number, complete: boolean): SmmuState {
  const version = r.u32("format_version");
  if (version !== SMMU_STATE_FORMAT_VERSION) {
    throw stateError(
      "STATE_VERSION_UNSUPPORTED",
      "format_version",
      `SMMUv3 state format ${version} is not supported (this model reads ${SMMU_STATE_FORMAT_VERSION})`,
    );
  }
  const found = r.u32("magic");
  if (found !== magic) throw malformed("magic", `0x${found.toString(16)} is not 0x${magic.toString(16)}`);

  const features = readFeatures(r);
  const stage2GranuleBits = r.u8("stage2_granule_bits");
  const flagsField = r.u16("feature_flags");
  if (flagsField >>> FEATURE_FLAGS.length !== 0) throw malformed("feature_flags", "unknown feature bits");
  r.reserved(2, "reserved");
  FEATURE_FLAGS.forEach((key, bit) => (features[key] = (flagsField & (1 << bit)) !== 0));
  const resolved = checkedFeatures(features);
  if (!isGranuleBits(stage2GranuleBits) || !granuleSupported(resolved, stage2GranuleBits)) {
    throw inconsistent("stage2_granule_bits", `granule 2^${stage2GranuleBits} is not advertised`);
  }
  const eventQueueDepth = limit(r, "event_queue_depth");
  const pageRequestCapacity = limit(r, "page_request_capacity");
  const pageRequestTimeoutMs = limit(r, "page_request_timeout_ms");
  r.reserved(4, "reserved");
  const guestMemoryBytes = r.safeU64("guest_memory_bytes");
  if (guestMemoryBytes === 0) throw inconsistent("guest_memory_bytes", "guest RAM cannot be empty");

  r.record("counters");
  const eventSequence = r.u32("event_next_sequence");
  if (eventSequence > SEQUENCE_MASK)
    throw inconsistent(r.field("event_next_sequence"), "sequences run 0..2^31-1");
  const nextCookie = r.u32("next_cookie");
  const eventsReported = r.safeU64("events_reported");
  const eventsDropped = r.safeU64("events_dropped");
  if (eventsDropped > eventsReported)
    throw inconsistent(r.field("events_dropped"), "more events dropped than reported");
  const delivered = r.safeU64("delivered");

  const pasidTable = readPasidTable(r);
  const msi = readMsi(r);

  const mappings: SmmuState["mappings"] = [];
  for (let i = 0, n = r.count("mappings", STATE_SIZES.mapping); i < n; i++) {
    r.record("mappings", i);
    const m = {
      ipa: r.safeU64("ipa"),
      hostAddress: r.safeU64("host_address"),
      size: r.safeU64("size"),
      perm: r.u8("perm"),
    };
    r.reserved(7, "reserved");
    const previous = mappings[i - 1];
    if (previous && m.ipa < previous.ipa + previous.size)
      throw inconsistent(r.field("ipa"), "mappings must ascend and not overlap");
    mappings.push(m);
  }

  const devices: DeviceState[] = [];
  const bySid = new Map<number, DeviceState>();
  for (let i = 0, n = r.count("devices", STATE_SIZES.device); i < n; i++) {
    r.record("devices", i);
    const streamId = r.u32("stream_id");
    const virtualStreamId = r.u32("virtual_stream_id");
    const flags = r.u8("flags");
    if (flags > 3) throw malformed(r.field("flags"), `unknown flag bits 0x${flags.toString(16)}`);
    r.reserved(7, "reserved");
    const ste0 = r.u64("ste0");
    const ste1 = r.u64("ste1");
    if ((flags & 2) === 0 && (ste0 | ste1) !== 0n)
      throw malformed(r.field("ste0"), "STE words without a guest STE");
    if ((flags & 2) !== 0 && pasidTable)
      throw inconsistent(r.field("flags"), "a guest STE and a seed PASID table cannot both own stage 1");
    const previous = devices[i - 1];
    if (previous && streamId <= previous.streamId)
      throw inconsistent(r.field("stream_id"), "devices must ascend by StreamID");
    const d: DeviceState = {
      streamId,
      virtualStreamId,
      pageRequests: (flags & 1) !== 0,
      guestSte: (flags & 2) !== 0 ? [ste0, ste1] : undefined,
    };
    devices.push(d);
    bySid.set(streamId, d);
  }

  const events = readEvents(r, eventQueueDepth, eventSequence, eventsReported);

  const pageRequests: PageRequestState[] = [];
  const cookies = new Set<number>();
  const groups = new Set<string>();
  let lastHeld = 0;
  const nRequests = r.count("page_requests", STATE_SIZES.pageRequest);
  if (nRequests > pageRequestCapacity)
    throw inconsistent("page_requests", `${nRequests} requests exceed the capacity ${pageRequestCapacity}`);
  for (let i = 0; i < nRequests; i++) {
    r.record("page_requests", i);
    const cookie = r.u32("cookie");
    const streamId = r.u32("stream_id");
    const virtualStreamId = r.u32("virtual_stream_id");
    const substreamId = r.u32("substream_id");
    const groupId = r.u16("group_id");
    const flags = r.u8("flags");
    const perm = r.u8("perm");
    const held = r.u8("held");
    r.reserved(3, "reserved");
    const remainingMs = r.u32("remaining_ms");
    r.reserved(4, "reserved");
    const address = r.u64("address");
    const eventsBefore = r.safeU64("events_before");
    if (cookie === 0 || cookies.has(cookie))
      throw inconsistent(r.field("cookie"), `cookie ${cookie} is 0 or repeated`);
    const device = bySid.get(streamId);
    if (!device && complete) throw inconsistent(r.field("stream_id"), `StreamID ${streamId} has no device`);
    if (device && virtualStreamId !== device.virtualStreamId)
      throw inconsistent(
        r.field("virtual_stream_id"),
        `the device's virtual StreamID is ${device.virtualStreamId}`,
      );
    if (groupId > MAX_GROUP_ID || groups.has(`${streamId}/${groupId}`))
      throw inconsistent(r.field("group_id"), `group ${groupId} is above 511 or repeated for the device`);
    if ((flags & ~3) !== 0 || (flags & PageRequestFlags.LAST_PAGE) === 0)
      throw malformed(
        r.field("flags"),
        `flags 0x${flags.toString(16)}: LAST_PAGE must be set, no other bits`,
      );
    const ssv = (flags & PageRequestFlags.PASID_VALID) !== 0;
    if (ssv ? substreamId >= 2 ** resolved.substreamIdBits : substreamId !== 0)
      throw inconsistent(
        r.field("substream_id"),
        `SubstreamID ${substreamId} does not fit or is not marked valid`,
      );
    if (perm !== 1 && perm !== 2)
      throw inconsistent(r.field("perm"), `perm ${perm} is neither read (1) nor write (2)`);
    if (held > 1) throw malformed(r.field("held"), `held ${held} is not 0 or 1`);
    if (remainingMs > pageRequestTimeoutMs)
      throw inconsistent(
        r.field("remaining_ms"),
        `${remainingMs} ms left exceeds the timeout ${pageRequestTimeoutMs} ms`,
      );
    if ((address & 0xfffn) !== 0n) throw inconsistent(r.field("address"), "the address is not 4 KiB aligned");
    if (eventsBefore > eventsReported || (held === 1 && eventsBefore < lastHeld))
      throw inconsistent(r.field("events_before"), "held requests must follow reported events in order");
    if (held === 0 && eventsBefore !== 0)
      throw malformed(r.field("events_before"), "set on a delivered request");
    if (held === 1) lastHeld = eventsBefore;
    cookies.add(cookie);
    groups.add(`${streamId}/${groupId}`);
    pageRequests.push({
      cookie,
      streamId,
      virtualStreamId,
      substreamId: ssv ? substreamId : undefined,
      groupId,
      flags,
      perm,
      address,
      remainingMs,
      held: held === 1,
      eventsBefore,
    });
  }
  return {
    features: resolved,
    stage2GranuleBits,
    eventQueueDepth,
    pageRequestCapacity,
    pageRequestTimeoutMs,
    guestMemoryBytes,
    eventSequence,
    nextCookie,
    eventsReported,
    eventsDropped,
    delivered,
    pasidTable,
    msi,
    mappings,
    devices,
    events,
    pageRequests,
  };
}

function readFeatures(r: StateReader): SmmuFeatures {
  return {
    streamIdBits: r.u8("stream_id_bits"),
    substreamIdBits: r.u8("substream_id_bits"),
    outputAddressBits: r.u8("output_address_bits"),
  } as SmmuFeatures;
}

function checkedFeatures(features: SmmuFeatures): SmmuFeatures {
  try {
    return resolveFeatures(features);
  } catch (error) {
    if (!(error instanceof SmmuError)) throw error;
    throw inconsistent(error.field ?? "features", error.message);
  }
}

function limit(r: StateReader, name: string): number {
  const v = r.u32(name);
  if (v < 1 || v > LIMIT_MAX) throw inconsistent(name, `${v} is not in [1, 2^31]`);
  return v;
}

function readPasidTable(r: StateReader): SmmuState["pasidTable"] {
  r.record("pasid_table");
  const kind = r.u8("kind");
  r.reserved(7, "reserved");
  const contextPtr = r.safeU64("context_ptr");
  if (kind > PASID_KIND.translate) throw malformed(r.field("kind"), `kind ${kind} is not 0..3`);
  if (kind !== PASID_KIND.translate && contextPtr !== 0)
    throw malformed(r.field("context_ptr"), "set without a translating table");
  if (kind === PASID_KIND.translate && (contextPtr % 64 !== 0 || contextPtr >= 2 ** 52))
    throw inconsistent(r.field("context_ptr"), "S1ContextPtr holds bits [51:6] only");
  switch (kind) {
    case PASID_KIND.none:
      return undefined;
    case PASID_KIND.abort:
      return { kind: "abort" };
    case PASID_KIND.bypass:
      return { kind: "bypass" };
    default:
      // The seed form installs one CD, linear, no substreams (digest §1.2).
      return { kind: "translate", contextPtr, s1fmt: 0, s1cdmax: 0, s1dss: 0, s1stalld: false, ats: false };
  }
}

function readMsi(r: StateReader): SmmuState["msi"] {
  r.record("msi");
  const bound = r.u8("bound");
  r.reserved(7, "reserved");
  const m = { giova: r.safeU64("giova"), gpa: r.safeU64("gpa"), size: r.safeU64("size") };
  if (bound > 1) throw malformed(r.field("bound"), `bound ${bound} is not 0 or 1`);
  if (bound === 0) {
    if (m.giova !== 0 || m.gpa !== 0 || m.size !== 0)
      throw malformed(r.field("giova"), "set without a binding");
    return undefined;
  }
  if (m.size === 0 || m.giova % m.size !== 0 || m.gpa % m.size !== 0)
    throw inconsistent(r.field("size"), "the doorbell addresses must be aligned to a non-zero size");
  return m;
}

/**
 * The event queue (vEVENTQ rules, digest §2.5): at most `depth` events, oldest first, each with
 * a sequence already taken (at distance 1..reported behind the next one, strictly closer as
 * the list goes on); a lost-events marker only last, carrying the last sequence taken.
 */
function readEvents(r: StateReader, depth: number, nextSequence: number, reported: number): EventState[] {
  const n = r.count("events", STATE_SIZES.event);
  const out: EventState[] = [];
  let events = 0;
  let previousDistance = Infinity;
  for (let i = 0; i < n; i++) {
    r.record("events", i);
    const sequence = r.u32("sequence");
    const kind = r.u8("kind");
    const distance = (nextSequence - sequence) & SEQUENCE_MASK;
    if (sequence > SEQUENCE_MASK || distance === 0 || distance > reported || distance >= previousDistance) {
      throw inconsistent(
        r.field("sequence"),
        `sequence ${sequence} is not one taken before ${nextSequence}, after the previous entry's`,
      );
    }
    previousDistance = distance;
    if (kind === 1) {
      r.reserved(STATE_SIZES.event - 5, "reserved");
      if (i !== n - 1 || distance !== 1)
        throw inconsistent(
          r.field("kind"),
          "a lost-events marker is only the last entry, with the last sequence",
        );
      out.push({ sequence, lost: true });
      continue;
    }
    if (kind !== 0) throw malformed(r.field("kind"), `kind ${kind} is not 0 (event) or 1 (lost)`);
    if (++events > depth) throw inconsistent("events", `more than the queue depth ${depth} events`);
    out.push({ sequence, lost: false, event: readEvent(r) });
  }
  return out;
}

function readEvent(r: StateReader): SmmuEvent {
  const id = r.u8("id");
  const eventClass = r.u8("class");
  r.reserved(1, "reserved");
  const present = r.u16("present");
  const flags = r.u16("flags");
  const stag = r.u16("stag");
  r.reserved(2, "reserved");
  const streamId = r.u32("stream_id");
  const substreamId = r.u32("substream_id");
  const inputAddress = r.u64("input_address");
  const ipa = r.safeU64("ipa");
  const fetchAddress = r.safeU64("fetch_address");
  if (!KNOWN_EVENTS.has(id))
    throw inconsistent(r.field("id"), `event 0x${id.toString(16)} is not one the SMMU reports`);
  if (present >>> EVENT_FIELDS.length !== 0) throw malformed(r.field("present"), "unknown field bits");
  const has = (key: (typeof EVENT_FIELDS)[number]) => (present & (1 << EVENT_FIELDS.indexOf(key))) !== 0;
  let allowedFlags = 0;
  EVENT_BOOLEANS.forEach((key, bit) => {
    if (has(key)) allowedFlags |= 1 << bit;
  });
  if ((flags & ~allowedFlags) !== 0)
    throw malformed(r.field("flags"), "a flag is set for a field not present");
  const absentButSet: [string, boolean, boolean][] = [
    ["class", has("eventClass"), eventClass !== 0],
    ["stag", has("stag"), stag !== 0],
    ["substream_id", has("substreamId"), substreamId !== 0],
    ["input_address", has("inputAddress"), inputAddress !== 0n],
    ["ipa", has("ipa"), ipa !== 0],
    ["fetch_address", has("fetchAddress"), fetchAddress !== 0],
  ];
  for (const [name, isPresent, set] of absentButSet)
    if (!isPresent && set) throw malformed(r.field(name), "set for a field not present");
  if (eventClass > 2) throw inconsistent(r.field("class"), `class ${eventClass} is not CD, TT or IN`);
  const event: SmmuEvent = { id: id as SmmuEvent["id"], streamId };
  if (has("substreamId")) event.substreamId = substreamId;
  if (has("stag")) event.stag = stag;
  EVENT_BOOLEANS.forEach((key, bit) => {
    if (has(key)) event[key] = (flags & (1 << bit)) !== 0;
  });
  if (has("eventClass")) event.eventClass = eventClass as SmmuEvent["eventClass"];
  if (has("inputAddress")) event.inputAddress = inputAddress;
  if (has("ipa")) event.ipa = ipa;
  if (has("fetchAddress")) event.fetchAddress = fetchAddress;
  return event;
}
