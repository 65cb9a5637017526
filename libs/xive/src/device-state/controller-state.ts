import { XiveError } from "../xive-error.js";
import type { ActiveMode, ControllerMode } from "../controller-mode.js";

/**
 * The migrated state of one interrupt controller, decoded: what QEMU moves for a KVM XIVE
 * device (xive.md §6: EAT, ENDT with the live queue index and generation, source status, TCTX
 * registers) and for XICS (ICS sources, ICPs), plus the machine configuration needed to build
 * the controller on the destination and the quiesce bookkeeping (saved PQ, stopped triggers).
 *
 * Binary layout, format version 1 (all integers big-endian; counts are u32 and bound the
 * record lists that follow them):
 *
 * ```
 * header (48 bytes)
 *   u32 format_version = 1          u32 magic = 0x56504943 ("VPIC")
 *   u8  mode (1 XIVE, 2 XICS, 3 DUAL)    u8 active_mode (1 XIVE, 2 XICS)
 *   u8  flags: bit0 xive_selected, bit1 store_eoi, bit2 nr_servers_set (other bits 0)
 *   u8  hv_priority
 *   u32 nr_irqs   u32 nr_servers_setting (0 unless flags.bit2)   u32 max_vcpus   u32 max_vcpu_ids
 *   u8  host_page_shift   u8[3] zero
 *   u64 guest_memory_bytes   u64 reserved (0)
 * vcpus            u32 n, then n × { u32 vcpu_id, u32 server }                    ascending vcpu_id
 * machine_sources  u32 n, then n × { u32 irq, u8 lsi }                            ascending irq
 * stopped_triggers u32 n, then n × { u32 irq }                                    arrival order
 * XIVE (active_mode 1):
 *   sources  u32 n, then n × { u32 irq, u8 status (bits 1:0 PQ, bit2 asserted, bit3 lsi),
 *                             u8 saved_pq, u32 end_index (server << 3 | priority), u32 eas_lo
 *                             (bit31 masked, bits 30:0 EISN) }                    ascending irq
 *   queues   u32 n, then n × { u32 end_index, u8 flags (bit0 valid, bit1 always_notify),
 *                             u8 qshift, u8 generation, u8 esb (ESn << 2 | ESe), u32 qindex,
 *                             u64 qaddr, u64 entries_written, u32 targeted_sources }
 *                                                                       ascending end_index
 *   contexts u32 n, then n × { u32 server, u8[64] TIMA registers (USER, OS, POOL, PHYS rings) }
 *                                                                          ascending server
 *   requested_ends (optional, added after version 1 shipped; present only when n ≥ 1)
 *            u32 n, then n × { u32 irq, u32 end_index }                        ascending irq
 *            QEMU's EAT END (server << 3 | priority) of each source the KVM device routes
 *            elsewhere than that END (RequestedEnds): an unmasked source of the list above, at
 *            its priority, naming a connected vCPU. Every other source's is its end_index.
 * XICS (active_mode 2):
 *   ics      u32 n, then n × { u32 nr, u8 flags, u8 priority, u8 saved_priority, u8 status,
 *                             u32 server }                                    ascending nr
 *   icps     u32 n, then n × { u32 server, u32 xirr, u8 pending_priority, u8 mfrr, u16 0 }
 *                                                                          ascending server
 * ```
 * Nothing follows the last list. ENDs that are neither valid nor targeted and ICS sources in
 * their reset state are left out. A state without requested_ends is what a writer from before
 * the list wrote, and reads as it did then (every source's QEMU END is where it is routed); a
 * reader from before it refuses a state that has the list (STATE_TRAILING_BYTES), rather than
 * answer the device's pick for QEMU's END.
 */
export const CONTROLLER_STATE_FORMAT_VERSION = 1;
export const CONTROLLER_STATE_MAGIC = 0x5650_4943;
/** Every integer of the format is big-endian; a refused state is a XiveError. */
export const CONTROLLER_STATE_FORMAT = { littleEndian: false, error: XiveError } as const;

/** Byte sizes of the header and of each record kind (the layout above). */
export const RECORD_BYTES = {
  header: 48,
  vcpu: 8,
  machineSource: 5,
  stoppedTrigger: 4,
  xiveSource: 14,
  xiveQueue: 32,
  xiveContext: 68,
  icsSource: 12,
  icp: 12,
  requestedEnd: 8,
} as const;

/** The header's mode and active_mode bytes. */
export const MODE_CODE = { XIVE: 1, XICS: 2, DUAL: 3 } as const;

/** The header's flags byte. */
export const HEADER_FLAG = { XIVE_SELECTED: 1, STORE_EOI: 2, NR_SERVERS_SET: 4 } as const;

export interface ControllerState {
  mode: ControllerMode;
  activeMode: ActiveMode;
  nrIrqs: number;
  /** NR_SERVERS as the VMM set it (undefined: never set, the default KVM_MAX_VCPUS applies). */
  nrServersSetting: number | undefined;
  maxVcpus: number;
  maxVcpuIds: number;
  hostPageShift: number;
  storeEoi: boolean;
  hvPriority: number;
  /** Size of the guest RAM the queues live in; the destination's must be the same. */
  guestMemoryBytes: number;
  vcpus: { vcpuId: number; server: number }[];
  /** Sources the machine initialised (re-applied if DUAL mode switches devices later). */
  machineSources: { irq: number; lsi: boolean }[];
  /** Triggers that arrived while quiesced, to replay on resume. */
  stoppedTriggers: number[];
  xive: XiveState | undefined;
  xics: XicsState | undefined;
}

export interface XiveState {
  /** OV5_XIVE_EXPLOIT was negotiated at CAS (xive.md §2). */
  xiveSelected: boolean;
  sources: XiveSourceState[];
  queues: XiveQueueState[];
  contexts: XiveContextState[];
}

/** A vCPU's presenter: its TIMA registers (USER, OS, POOL, PHYS rings). */
export interface XiveContextState {
  server: number;
  regs: Uint8Array;
}

/** The scalar part of a state: what its header holds. */
export type ControllerHeader = Pick<
  ControllerState,
  | "mode"
  | "activeMode"
  | "nrIrqs"
  | "nrServersSetting"
  | "maxVcpus"
  | "maxVcpuIds"
  | "hostPageShift"
  | "storeEoi"
  | "hvPriority"
  | "guestMemoryBytes"
> & { xiveSelected: boolean };

/** The scalar fields a header and a state share (a state keeps xiveSelected in its XiveState). */
export function scalarsOf(
  header: Omit<ControllerHeader, "xiveSelected">,
): Omit<ControllerHeader, "xiveSelected"> {
  return {
    mode: header.mode,
    activeMode: header.activeMode,
    nrIrqs: header.nrIrqs,
    nrServersSetting: header.nrServersSetting,
    maxVcpus: header.maxVcpus,
    maxVcpuIds: header.maxVcpuIds,
    hostPageShift: header.hostPageShift,
    storeEoi: header.storeEoi,
    hvPriority: header.hvPriority,
    guestMemoryBytes: header.guestMemoryBytes,
  };
}

export function headerOf(state: ControllerState): ControllerHeader {
  return { ...scalarsOf(state), xiveSelected: state.xive?.xiveSelected ?? false };
}

export interface XiveSourceState {
  irq: number;
  lsi: boolean;
  asserted: boolean;
  /** PQ now (latched at quiesce: 10 or 11, or 01 for a source that was off). */
  pq: number;
  /** PQ when the controller was quiesced, restored on resume. */
  savedPq: number;
  /** EAS: END index (server << 3 | priority; block 0 on sPAPR), MASKED and EISN (xive.md §4.1). */
  endIndex: number;
  masked: boolean;
  eisn: number;
  /**
   * The END QEMU's EAT names (what H_INT_GET_SOURCE_CONFIG answers and a restore hands to
   * SOURCE_CONFIG): endIndex, unless the KVM device routed the source elsewhere (RequestedEnds).
   */
  requestedEnd: number;
}

export interface XiveQueueState {
  endIndex: number;
  /** VALID + ENQUEUE: the queue has a page. */
  valid: boolean;
  alwaysNotify: boolean;
  qshift: number;
  qaddr: number;
  /** The live generation (KVM's qtoggle) and index (qindex), xive.md §1.4, §6 pre_save. */
  generation: number;
  qindex: number;
  /** END ESB PQs: ESn (notification) and ESe (escalation). */
  esn: number;
  ese: number;
  entriesWritten: number;
  /** Sources KVM's target selection counted against the queue (xive.md §1.3). */
  targetedSources: number;
}

export interface XicsState {
  sources: IcsSourceRecord[];
  icps: IcpRecord[];
}

export interface IcsSourceRecord {
  nr: number;
  /** XICS_FLAGS_LSI / XICS_FLAGS_MSI (0 when unclaimed). */
  flags: number;
  server: number;
  priority: number;
  savedPriority: number;
  /** XICS_STATUS_* bits. */
  status: number;
}

export interface IcpRecord {
  server: number;
  xirr: number;
  pendingPriority: number;
  mfrr: number;
}
