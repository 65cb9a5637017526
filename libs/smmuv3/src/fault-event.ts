import { EventClass, EventId, type SmmuEvent } from "./event-record.js";
import type { WalkFault } from "./nested-walker.js";

/** Event numbers iommufd forwards to a vEVENTQ (arm_smmu_handle_event → vmaster, digest §2.5). */
const FORWARDED_EVENTS: ReadonlySet<number> = new Set([0x04, 0x06, 0x08, 0x0a, 0x10, 0x11, 0x12, 0x13]);

/**
 * Whether iommufd forwards the event to the guest's vEVENTQ: one of FORWARDED_EVENTS and not a
 * stage-2 fault, which stays the host's (Linux 7.3 arm_smmu_handle_event: `else if
 * (master->vmaster && !event->s2)`; the digest lists the numbers only, the Arm tier's kernel
 * showed the rule).
 */
export function forwardedToGuest(event: SmmuEvent): boolean {
  return FORWARDED_EVENTS.has(event.id) && event.stage2 !== true;
}

/** Configuration errors: always recorded, carrying only SSID/SSV (digest §3.4). */
const CONFIG_EVENTS: ReadonlySet<number> = new Set([
  EventId.C_BAD_STREAMID,
  EventId.C_BAD_STE,
  EventId.F_STREAM_DISABLED,
  EventId.C_BAD_SUBSTREAMID,
  EventId.C_BAD_CD,
]);

/** The transaction a fault happened to. */
export interface FaultingAccess {
  /** StreamID the record carries (the vSID once a vdevice exists). */
  streamId: number;
  substreamId: number | undefined;
  write: boolean;
  inputAddress: bigint;
}

/**
 * The event record of a walk fault, with the fields QEMU fills for that event (digest §3.4):
 * configuration errors only SSID/SSV; F_STE_FETCH / F_CD_FETCH the SSID and fetch address; the
 * page-table faults everything (RnW, S2, CLASS, TT_READ, InputAddr, IPA of a stage-2 fault, fetch
 * address of an external abort).
 */
export function faultEvent(f: WalkFault, access: FaultingAccess): SmmuEvent {
  const id = f.id as SmmuEvent["id"];
  const { streamId, substreamId } = access;
  if (CONFIG_EVENTS.has(id)) return { id, streamId, substreamId };
  if (id === EventId.F_CD_FETCH || id === EventId.F_STE_FETCH) {
    return { id, streamId, substreamId, fetchAddress: f.fetchAddress };
  }
  return {
    id,
    streamId,
    substreamId,
    read: !access.write,
    stage2: f.stage2,
    eventClass: f.eventClass as SmmuEvent["eventClass"],
    ttRead: f.eventClass === EventClass.TT,
    inputAddress: access.inputAddress,
    ...(f.stage2 && f.ipa >= 0 ? { ipa: f.ipa } : {}),
    ...(f.fetchAddress >= 0 ? { fetchAddress: f.fetchAddress } : {}),
  };
}

/**
 * Whether the fault is recorded (digest §4.1 step 4): configuration errors and CD fetch aborts
 * always; stage-2 faults always (the host's STE sets S2R); stage-1 faults when the CD's R is set.
 */
export function faultRecorded(f: WalkFault, cdRecord: boolean | undefined): boolean {
  if (CONFIG_EVENTS.has(f.id) || f.id === EventId.F_CD_FETCH || f.stage2) return true;
  return cdRecord ?? true;
}

/** Stage-1 translation, access-flag and permission faults are the ones a page request can resolve. */
export function faultRecoverable(f: WalkFault): boolean {
  return (
    !f.stage2 &&
    (f.id === EventId.F_TRANSLATION || f.id === EventId.F_ACCESS || f.id === EventId.F_PERMISSION)
  );
}
