import { StateReader, stateError as formatError } from "@vplane/model-kit";
import type { ControllerMode } from "../controller-mode.js";
import { END_W1_PAGE_OFF } from "../end-table.js";
import { KVM_XIVE_NR_IRQS } from "../kvm-attributes.js";
import { PseriesIrq } from "../pseries-layout.js";
import { TM_QW1_OS, TM_QW1W2_OS_CAM, TM_QW1W2_VO, TM_WORD2 } from "../thread-context.js";
import { XICS_IPI, XISR_MASK } from "../xics/icp.js";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  CONTROLLER_STATE_FORMAT,
  CONTROLLER_STATE_MAGIC,
  HEADER_FLAG,
  MODE_CODE,
  RECORD_BYTES,
  scalarsOf,
  type ControllerHeader,
  type ControllerState,
  type IcpRecord,
  type IcsSourceRecord,
  type XicsState,
  type XiveContextState,
  type XiveQueueState,
  type XiveSourceState,
  type XiveState,
} from "./controller-state.js";
import { stoppedTriggerLimit } from "../stopped-triggers.js";

/** Upper bounds that keep a hostile state from allocating without limit. */
const MAX_VCPUS_BOUND = 1 << 16;
const MAX_VCPU_IDS_BOUND = 1 << 24;
const QUEUE_SHIFTS = new Set([12, 16, 21, 24]);
const PQ_OFF = 0b01;
const PQ_PENDING = 0b10;
const PQ_QUEUED = 0b11;

const stateError = (reason: string, field: string, message: string) =>
  formatError(CONTROLLER_STATE_FORMAT, reason, field, message);
const inconsistent = (field: string, message: string) => stateError("STATE_INCONSISTENT", field, message);

function modeOf(code: number, field: string): ControllerMode {
  for (const [mode, value] of Object.entries(MODE_CODE)) if (value === code) return mode as ControllerMode;
  throw stateError("STATE_MALFORMED", field, `${field} ${code} is not 1 (XIVE), 2 (XICS) or 3 (DUAL)`);
}

/** Checks that a list's keys strictly ascend; names the first entry that does not. */
function ascending(
  r: StateReader,
  previous: number | undefined,
  value: number,
  name: string,
  what: string,
): void {
  if (previous !== undefined && value <= previous) {
    const field = r.field(name);
    throw inconsistent(
      field,
      `${what} ${value} is not above the previous ${previous} (duplicate or out of order)`,
    );
  }
}

/** A checked header. */
export interface Header extends ControllerHeader {
  /** NR_SERVERS in effect: the setting (or KVM_MAX_VCPUS) clamped to KVM_MAX_VCPUS. */
  nrServers: number;
}

/** The magic as its four ASCII letters. */
const magicText = (magic: number) =>
  String.fromCharCode(magic >>> 24, (magic >>> 16) & 0xff, (magic >>> 8) & 0xff, magic & 0xff);

/** Reads and checks the header of a full state, or with `expected` of a delta. */
export function readHeader(r: StateReader, expected: number = CONTROLLER_STATE_MAGIC): Header {
  const version = r.u32("format_version");
  if (version !== CONTROLLER_STATE_FORMAT_VERSION) {
    throw stateError(
      "STATE_VERSION_UNSUPPORTED",
      "format_version",
      `interrupt-controller state format ${version} is not supported (this service reads ${CONTROLLER_STATE_FORMAT_VERSION})`,
    );
  }
  const magic = r.u32("magic");
  if (magic !== expected) {
    throw stateError(
      "STATE_MALFORMED",
      "magic",
      `magic 0x${magic.toString(16)} is not 0x${expected.toString(16)} ("${magicText(expected)}")`,
    );
  }
  const mode = modeOf(r.u8("mode"), "mode");
  const active = modeOf(r.u8("active_mode"), "active_mode");
  if (active === "DUAL" || (mode !== "DUAL" && active !== mode)) {
    throw inconsistent("active_mode", `a ${mode} controller cannot have ${active} active`);
  }
  const flags = r.u8("flags");
  if (flags & ~(HEADER_FLAG.XIVE_SELECTED | HEADER_FLAG.STORE_EOI | HEADER_FLAG.NR_SERVERS_SET)) {
    throw stateError("STATE_MALFORMED", "flags", `unknown header flags 0x${flags.toString(16)}`);
  }
  if (flags & HEADER_FLAG.XIVE_SELECTED && active !== "XIVE") {
    throw inconsistent("flags", "XIVE cannot be selected at CAS while XICS is active");
  }
  const hvPriority = r.u8("hv_priority");
  const nrIrqs = r.u32("nr_irqs");
  if (nrIrqs < 1 || nrIrqs > KVM_XIVE_NR_IRQS) {
    throw inconsistent("nr_irqs", `nr_irqs must be 1..${KVM_XIVE_NR_IRQS}, got ${nrIrqs}`);
  }
  const setting = r.u32("nr_servers_setting");
  const maxVcpus = r.u32("max_vcpus");
  const maxVcpuIds = r.u32("max_vcpu_ids");
  if (maxVcpus < 1 || maxVcpus > MAX_VCPUS_BOUND) {
    throw inconsistent("max_vcpus", `max_vcpus must be 1..${MAX_VCPUS_BOUND}, got ${maxVcpus}`);
  }
  if (maxVcpuIds < maxVcpus || maxVcpuIds > MAX_VCPU_IDS_BOUND) {
    throw inconsistent(
      "max_vcpu_ids",
      `max_vcpu_ids must be ${maxVcpus}..${MAX_VCPU_IDS_BOUND}, got ${maxVcpuIds}`,
    );
  }
  let nrServersSetting: number | undefined;
  if (flags & HEADER_FLAG.NR_SERVERS_SET) {
    if (setting < 1 || setting > maxVcpuIds) {
      throw inconsistent("nr_servers_setting", `nr_servers must be 1..${maxVcpuIds}, got ${setting}`);
    }
    nrServersSetting = setting;
  } else if (setting !== 0) {
    throw inconsistent("nr_servers_setting", `nr_servers_setting is ${setting} but flagged as never set`);
  }
  const hostPageShift = r.u8("host_page_shift");
  if (hostPageShift < 12 || hostPageShift > 30) {
    throw inconsistent("host_page_shift", `host_page_shift must be 12..30, got ${hostPageShift}`);
  }
  if (r.u8("reserved") !== 0 || r.u16("reserved") !== 0) {
    throw stateError("STATE_MALFORMED", "reserved", "reserved header bytes are not zero");
  }
  const guestMemoryBytes = r.safeU64("guest_memory_bytes");
  if (guestMemoryBytes === 0) throw inconsistent("guest_memory_bytes", "guest_memory_bytes is 0");
  if (r.safeU64("reserved") !== 0)
    throw stateError("STATE_MALFORMED", "reserved", "reserved header bytes are not zero");
  return {
    mode,
    activeMode: active,
    xiveSelected: (flags & HEADER_FLAG.XIVE_SELECTED) !== 0,
    storeEoi: (flags & HEADER_FLAG.STORE_EOI) !== 0,
    hvPriority,
    nrIrqs,
    nrServersSetting,
    maxVcpus,
    maxVcpuIds,
    hostPageShift,
    guestMemoryBytes,
    nrServers: Math.min(nrServersSetting ?? maxVcpus, maxVcpus),
  };
}

export function readVcpus(r: StateReader, header: Header): { vcpuId: number; server: number }[] {
  const n = r.count("vcpus", RECORD_BYTES.vcpu);
  const vcpus: { vcpuId: number; server: number }[] = [];
  const servers = new Set<number>();
  for (let i = 0; i < n; i++) {
    r.record("vcpus", i);
    const vcpuId = r.u32("vcpu_id");
    const server = r.u32("server");
    ascending(r, vcpus.at(-1)?.vcpuId, vcpuId, "vcpu_id", "vCPU id");
    if (server >= header.nrServers) {
      throw inconsistent(
        r.field("server"),
        `vCPU ${vcpuId}: server ${server} is not below nr_servers ${header.nrServers}`,
      );
    }
    if (servers.has(server))
      throw inconsistent(r.field("server"), `vCPU ${vcpuId}: server ${server} is used twice`);
    servers.add(server);
    vcpus.push({ vcpuId, server });
  }
  return vcpus;
}

export function readMachineSources(r: StateReader, header: Header): { irq: number; lsi: boolean }[] {
  const n = r.count("machine_sources", RECORD_BYTES.machineSource);
  // XICS accepts IPIs below the ICS and the ICS's own sources (InterruptController.initSource).
  const limit =
    header.activeMode === "XIVE" ? KVM_XIVE_NR_IRQS : Math.max(header.nrIrqs, PseriesIrq.XIRQ_BASE);
  const out: { irq: number; lsi: boolean }[] = [];
  for (let i = 0; i < n; i++) {
    r.record("machine_sources", i);
    const irq = r.u32("irq");
    const lsi = r.u8("lsi");
    ascending(r, out.at(-1)?.irq, irq, "irq", "source");
    if (irq >= limit) throw inconsistent(r.field("irq"), `source ${irq} is not below ${limit}`);
    if (lsi > 1)
      throw stateError("STATE_MALFORMED", r.field("lsi"), `source ${irq}: lsi byte ${lsi} is not 0 or 1`);
    out.push({ irq, lsi: lsi === 1 });
  }
  return out;
}

function readXiveSources(
  r: StateReader,
  machine: readonly { irq: number; lsi: boolean }[],
): XiveSourceState[] {
  const n = r.count("xive.sources", RECORD_BYTES.xiveSource);
  const v = r.data;
  if (n !== machine.length) {
    throw inconsistent("xive.sources", `${n} XIVE sources, but the machine initialised ${machine.length}`);
  }
  const out: XiveSourceState[] = [];
  for (let i = 0; i < n; i++) {
    const at = r.take(RECORD_BYTES.xiveSource);
    r.record("xive.sources", i);
    const irq = v.getUint32(at);
    const status = v.getUint8(at + 4);
    const savedPq = v.getUint8(at + 5);
    const endIndex = v.getUint32(at + 6);
    const lo = v.getUint32(at + 10);
    const m = machine[i]!;
    if (irq !== m.irq) {
      throw inconsistent(
        r.field("irq"),
        `XIVE source ${irq} is not the machine's source ${m.irq} at index ${i}`,
      );
    }
    if (status > 0xf)
      throw stateError(
        "STATE_MALFORMED",
        r.field("status"),
        `source ${irq}: status 0x${status.toString(16)} has unknown bits`,
      );
    const source: XiveSourceState = {
      irq,
      lsi: (status & 8) !== 0,
      asserted: (status & 4) !== 0,
      pq: status & 3,
      savedPq,
      endIndex,
      masked: (lo & 0x8000_0000) !== 0,
      eisn: lo & 0x7fff_ffff,
      requestedEnd: endIndex, // unless requested_ends names it
    };
    checkXiveSource(source, m.lsi, (name) => r.field(name));
    out.push(source);
  }
  return out;
}

/** Names a field of the record being checked. */
export type FieldOf = (name: string) => string;

/** A XIVE source record's own rules, `machineLsi` being the machine's setting for its irq. */
export function checkXiveSource(s: XiveSourceState, machineLsi: boolean, field: FieldOf): void {
  if (s.lsi !== machineLsi)
    throw inconsistent(
      field("status"),
      `source ${s.irq}: LSI ${s.lsi} differs from the machine's ${machineLsi}`,
    );
  if (s.asserted && !s.lsi) throw inconsistent(field("status"), `source ${s.irq}: an MSI cannot be asserted`);
  if (s.savedPq > 3)
    throw inconsistent(field("saved_pq"), `source ${s.irq}: saved PQ ${s.savedPq} is not 0..3`);
  if (s.endIndex > 0x00ff_ffff) {
    throw inconsistent(
      field("end_index"),
      `source ${s.irq}: END ${s.endIndex} is not in block 0 (24-bit index)`,
    );
  }
}

/**
 * Reads the optional requested_ends list into the records of `sources` (ascending by irq) it
 * names: a list of a delta names changed records (`list` "xive.sources.changed"), of a state
 * any. Only where it is: nothing left to read means no source has one.
 */
export function readRequestedEnds(r: StateReader, sources: readonly XiveSourceState[], list: string): void {
  if (r.remaining === 0) return;
  const n = r.count("xive.requested_ends", RECORD_BYTES.requestedEnd);
  let at = 0;
  let previous: number | undefined;
  for (let i = 0; i < n; i++) {
    r.record("xive.requested_ends", i);
    const irq = r.u32("irq");
    const end = r.u32("end_index");
    ascending(r, previous, irq, "irq", "source");
    previous = irq;
    while (at < sources.length && sources[at]!.irq < irq) at++;
    const source = sources[at];
    if (source?.irq !== irq) throw inconsistent(r.field("irq"), `source ${irq} has no record in ${list}`);
    if (end === source.endIndex) {
      throw inconsistent(
        r.field("end_index"),
        `source ${irq}: END ${end} is where it is routed (only a source routed elsewhere is listed)`,
      );
    }
    source.requestedEnd = end;
  }
}

/**
 * A source's QEMU END (XiveSourceState.requestedEnd) where it is not its routing: the KVM device
 * moves an unmasked source only, and at the same priority (kvmppc_xive_select_target), and
 * QEMU's END names a vCPU (spapr_xive_target_to_end), whose server is in `connected`.
 */
export function checkRequestedEnd(s: XiveSourceState, connected: ReadonlySet<number>, field: string): void {
  if (s.requestedEnd === s.endIndex) return;
  const requested = `source ${s.irq}: QEMU's END ${s.requestedEnd} (server ${s.requestedEnd >>> 3}, priority ${s.requestedEnd & 7})`;
  if (s.masked) throw inconsistent(field, `${requested} is kept apart from a masked source's`);
  if ((s.requestedEnd & 7) !== (s.endIndex & 7))
    throw inconsistent(field, `${requested} is not at the priority it is routed at (${s.endIndex & 7})`);
  if (!connected.has(s.requestedEnd >>> 3)) throw inconsistent(field, `${requested} names no connected vCPU`);
}

/** The PQ a quiesced source must show (xive.md §6 latch): 01 stays off, else 10, or 11 once hit. */
export function checkLatchedPq(source: XiveSourceState, triggers: number, field: string): void {
  const expected = source.savedPq === PQ_OFF ? PQ_OFF : source.lsi || triggers === 0 ? PQ_PENDING : PQ_QUEUED;
  if (source.pq !== expected) {
    throw inconsistent(
      field,
      `source ${source.irq}: PQ ${source.pq} after quiesce with saved PQ ${source.savedPq} and ${triggers} trigger(s) should be ${expected}`,
    );
  }
}

/** How an error names a queue: by its vCPU and priority (END index = server << 3 | priority). */
function queueName(endIndex: number): string {
  return `queue (server ${endIndex >>> 3}, priority ${endIndex & 7})`;
}

function readXiveQueues(r: StateReader, header: Header, connected: Set<number>): XiveQueueState[] {
  const n = r.count("xive.queues", RECORD_BYTES.xiveQueue);
  const v = r.data;
  const out: XiveQueueState[] = [];
  for (let i = 0; i < n; i++) {
    const at = r.take(RECORD_BYTES.xiveQueue);
    r.record("xive.queues", i);
    const endIndex = v.getUint32(at);
    const flags = v.getUint8(at + 4);
    const qshift = v.getUint8(at + 5);
    const generation = v.getUint8(at + 6);
    const esb = v.getUint8(at + 7);
    const qindex = v.getUint32(at + 8);
    const qaddr = r.safeU64At(at + 12, "qaddr");
    const entriesWritten = r.safeU64At(at + 20, "entries_written");
    const targetedSources = v.getUint32(at + 28);
    ascending(r, i > 0 ? out[i - 1]!.endIndex : undefined, endIndex, "end_index", "END");
    if (flags > 3 || esb > 0xf) {
      throw stateError("STATE_MALFORMED", r.field("flags"), `${queueName(endIndex)}: unknown flag bits`);
    }
    const q: XiveQueueState = {
      endIndex,
      valid: (flags & 1) !== 0,
      alwaysNotify: (flags & 2) !== 0,
      qshift,
      qaddr,
      generation,
      qindex,
      esn: esb >>> 2,
      ese: esb & 3,
      entriesWritten,
      targetedSources,
    };
    checkXiveQueue(q, header, connected, (name) => r.field(name));
    out.push(q);
  }
  return out;
}

/** A XIVE queue record's own rules, given the header and the connected vCPUs' servers. */
export function checkXiveQueue(
  q: XiveQueueState,
  header: Pick<Header, "nrServers" | "guestMemoryBytes">,
  connected: ReadonlySet<number>,
  field: FieldOf,
): void {
  const size = connected.size === 0 ? 0 : header.nrServers << 3;
  const server = q.endIndex >>> 3;
  if (q.endIndex >= size) {
    throw inconsistent(
      field("end_index"),
      `${queueName(q.endIndex)}: END ${q.endIndex} is not below the END table size ${size}`,
    );
  }
  if (q.valid) {
    if (!connected.has(server))
      throw inconsistent(field("end_index"), `${queueName(q.endIndex)}: no vCPU has server ${server}`);
    if (!QUEUE_SHIFTS.has(q.qshift)) {
      throw inconsistent(
        field("qshift"),
        `${queueName(q.endIndex)}: qshift ${q.qshift} is not 12, 16, 21 or 24`,
      );
    }
    const bytes = 1 << q.qshift; // qshift is at most 24 here
    // qaddr is below 2^53, so its low 32 bits (>>> 0) decide the alignment.
    if (((q.qaddr >>> 0) & (bytes - 1)) !== 0) {
      throw inconsistent(
        field("qaddr"),
        `${queueName(q.endIndex)}: qaddr 0x${q.qaddr.toString(16)} is not aligned to its size`,
      );
    }
    if (q.qaddr + bytes > header.guestMemoryBytes) {
      throw inconsistent(
        field("qaddr"),
        `${queueName(q.endIndex)}: the queue at 0x${q.qaddr.toString(16)} is outside guest RAM`,
      );
    }
    if (q.generation > 1)
      throw inconsistent(
        field("generation"),
        `${queueName(q.endIndex)}: generation ${q.generation} is not 0 or 1`,
      );
    // Any 22-bit index, as EQ_CONFIG (the path QEMU's post_load takes) accepts and keeps it;
    // an index past the queue's entries wraps on the next write (EndTable.enqueue).
    if (q.qindex > END_W1_PAGE_OFF) {
      throw inconsistent(
        field("qindex"),
        `${queueName(q.endIndex)}: qindex ${q.qindex} does not fit the END's 22-bit PAGE_OFF field`,
      );
    }
  } else if (
    q.alwaysNotify ||
    q.qshift !== 0 ||
    q.qaddr !== 0 ||
    q.generation !== 0 ||
    q.qindex !== 0 ||
    q.esn !== PQ_OFF ||
    q.ese !== PQ_OFF ||
    q.entriesWritten !== 0
  ) {
    throw inconsistent(
      field("flags"),
      `${queueName(q.endIndex)}: an END without a queue must be in its reset state`,
    );
  }
}

function readXiveContexts(
  r: StateReader,
  servers: readonly number[],
): { server: number; regs: Uint8Array }[] {
  const n = r.count("xive.contexts", RECORD_BYTES.xiveContext);
  if (n !== servers.length) {
    throw inconsistent("xive.contexts", `${n} vCPU contexts, but ${servers.length} vCPUs are connected`);
  }
  const out: { server: number; regs: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    r.record("xive.contexts", i);
    const server = r.u32("server");
    const regs = r.raw(64, "regs");
    if (server !== servers[i]) {
      throw inconsistent(r.field("server"), `context ${i} is for server ${server}, expected ${servers[i]}`);
    }
    checkXiveContext({ server, regs }, (name) => r.field(name));
    out.push({ server, regs });
  }
  return out;
}

/** A vCPU context's own rule: its OS CAM names its server's NVT (0x400 + server, valid). */
export function checkXiveContext({ server, regs }: XiveContextState, field: FieldOf): void {
  const at = TM_QW1_OS + TM_WORD2;
  const cam = ((regs[at]! << 24) | (regs[at + 1]! << 16) | (regs[at + 2]! << 8) | regs[at + 3]!) >>> 0;
  const expected = (TM_QW1W2_VO | ((0x400 + server) & TM_QW1W2_OS_CAM)) >>> 0;
  if (cam !== expected) {
    throw inconsistent(
      field("regs"),
      `server ${server}: OS CAM 0x${cam.toString(16)} is not 0x${expected.toString(16)}`,
    );
  }
}

function readXive(
  r: StateReader,
  header: Header,
  vcpus: readonly { server: number }[],
  machine: readonly { irq: number; lsi: boolean }[],
): XiveState {
  const servers = vcpus.map((v) => v.server).sort((a, b) => a - b);
  const sources = readXiveSources(r, machine);
  const connected = new Set(servers);
  const queues = readXiveQueues(r, header, connected);
  const contexts = readXiveContexts(r, servers);
  readRequestedEnds(r, sources, "xive.sources");
  sources.forEach((s, i) => checkRequestedEnd(s, connected, `xive.sources[${i}].requested_end`));
  return { xiveSelected: header.xiveSelected, sources, queues, contexts };
}

function readXics(
  r: StateReader,
  header: Header,
  vcpus: readonly { server: number }[],
  machine: readonly { irq: number }[],
): XicsState {
  const offset = PseriesIrq.XIRQ_BASE;
  const end = Math.max(offset, header.nrIrqs);
  const n = r.count("xics.sources", RECORD_BYTES.icsSource);
  const sources: IcsSourceRecord[] = [];
  for (let i = 0; i < n; i++) {
    r.record("xics.sources", i);
    const nr = r.u32("nr");
    const flags = r.u8("flags");
    const priority = r.u8("priority");
    const savedPriority = r.u8("saved_priority");
    const status = r.u8("status");
    const server = r.u32("server");
    ascending(r, sources.at(-1)?.nr, nr, "nr", "source");
    if (nr < offset || nr >= end)
      throw inconsistent(r.field("nr"), `source ${nr} is outside the ICS ${offset}..${end - 1}`);
    if (flags > 2)
      throw stateError(
        "STATE_MALFORMED",
        r.field("flags"),
        `source ${nr}: flags ${flags} is not 0, 1 (LSI) or 2 (MSI)`,
      );
    if (status > 0xf)
      throw stateError("STATE_MALFORMED", r.field("status"), `source ${nr}: unknown status bits`);
    sources.push({ nr, flags, server, priority, savedPriority, status });
  }
  const claimed = new Set(sources.filter((s) => s.flags !== 0).map((s) => s.nr));
  const machineClaims = machine.filter((s) => s.irq >= offset && s.irq < end);
  if (machineClaims.length !== claimed.size || machineClaims.some((s) => !claimed.has(s.irq))) {
    throw inconsistent("xics.sources", "the claimed ICS sources are not the sources the machine initialised");
  }
  const servers = vcpus.map((v) => v.server).sort((a, b) => a - b);
  const m = r.count("xics.icps", RECORD_BYTES.icp);
  if (m !== servers.length)
    throw inconsistent("xics.icps", `${m} ICPs, but ${servers.length} vCPUs are connected`);
  const icps: IcpRecord[] = [];
  for (let i = 0; i < m; i++) {
    r.record("xics.icps", i);
    const server = r.u32("server");
    const xirr = r.u32("xirr");
    const pendingPriority = r.u8("pending_priority");
    const mfrr = r.u8("mfrr");
    if (r.u16("reserved") !== 0)
      throw stateError("STATE_MALFORMED", r.field("reserved"), "reserved bytes are not zero");
    if (server !== servers[i])
      throw inconsistent(r.field("server"), `ICP ${i} is for server ${server}, expected ${servers[i]}`);
    const xisr = xirr & XISR_MASK;
    if ((xisr === 0) !== (pendingPriority === 0xff)) {
      throw inconsistent(
        r.field("pending_priority"),
        `server ${server}: XISR ${xisr} with pending priority ${pendingPriority}`,
      );
    }
    if (xisr !== 0 && xisr !== XICS_IPI && !claimed.has(xisr)) {
      throw inconsistent(
        r.field("xirr"),
        `server ${server}: XISR ${xisr} is neither the IPI nor a claimed source`,
      );
    }
    icps.push({ server, xirr, pendingPriority, mfrr });
  }
  return { sources, icps };
}

/** Each stopped trigger names a source of the active device, within its per-source bound. */
export function checkStoppedTriggers(
  triggers: readonly number[],
  lsiOf: (irq: number) => boolean | undefined,
): Map<number, number> {
  const counts = new Map<number, number>();
  triggers.forEach((irq, i) => {
    const lsi = lsiOf(irq);
    if (lsi === undefined)
      throw inconsistent(
        `stopped_triggers[${i}]`,
        `a trigger of source ${irq}, which the controller does not have`,
      );
    const count = (counts.get(irq) ?? 0) + 1;
    if (count > stoppedTriggerLimit(lsi)) {
      throw inconsistent(
        `stopped_triggers[${i}]`,
        `source ${irq} has more stopped triggers than an ${lsi ? "LSI" : "MSI"} keeps`,
      );
    }
    counts.set(irq, count);
  });
  return counts;
}

/** A u32 count, then each u32 `name` (stopped triggers, a delta's removed keys). */
export function readU32List(r: StateReader, list: string, name: string): number[] {
  const n = r.count(list, RECORD_BYTES.stoppedTrigger);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    r.record(list, i);
    out.push(r.u32(name));
  }
  return out;
}

/** A state decodeControllerState checked: building a controller from it cannot fail. */
export type CheckedControllerState = ControllerState & { readonly checked: true };

/**
 * Decodes an exported controller state with every check done before anything is built: the
 * format version first (STATE_VERSION_UNSUPPORTED), then the layout (STATE_TRUNCATED,
 * STATE_MALFORMED, STATE_TRAILING_BYTES) and the values (STATE_INCONSISTENT), each error naming
 * the offending entry in `field`. The result is consistent: building a controller from it
 * cannot fail.
 */
export function decodeControllerState(bytes: Uint8Array): CheckedControllerState {
  const r = new StateReader(bytes, CONTROLLER_STATE_FORMAT);
  const header = readHeader(r);
  const vcpus = readVcpus(r, header);
  const machineSources = readMachineSources(r, header);
  const stoppedTriggers = readU32List(r, "stopped_triggers", "irq");
  let xive: XiveState | undefined;
  let xics: XicsState | undefined;
  const lsiOf = new Map<number, boolean>();
  if (header.activeMode === "XIVE") {
    xive = readXive(r, header, vcpus, machineSources);
    for (const s of xive.sources) lsiOf.set(s.irq, s.lsi);
  } else {
    xics = readXics(r, header, vcpus, machineSources);
    for (const s of xics.sources) if (s.flags !== 0) lsiOf.set(s.nr, s.flags === 1);
  }
  r.end();
  const counts = checkStoppedTriggers(stoppedTriggers, (irq) => lsiOf.get(irq));
  xive?.sources.forEach((s, i) => checkLatchedPq(s, counts.get(s.irq) ?? 0, `xive.sources[${i}].status`));
  return {
    ...scalarsOf(header),
    vcpus,
    machineSources,
    stoppedTriggers,
    xive,
    xics,
    checked: true,
  };
}
