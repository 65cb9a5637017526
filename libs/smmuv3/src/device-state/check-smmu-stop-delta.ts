import { stateError } from "@vplane/model-kit";
import { POW2 } from "../bits.js";
import type { SmmuFeatures } from "../features.js";
import type { DeviceRecord } from "../smmu-device.js";
import type { Stage2Domain } from "../stage2-domain.js";
import { validateGuestSte, type GuestStage1 } from "../stream-table-entry.js";
import { replaying } from "./restore-smmu-state.js";
import type { SmmuDelta } from "./smmu-delta.js";
import { SMMU_STATE_FORMAT } from "./smmu-state.js";

/** What a stop delta is checked against: the quiesced SMMU it is to change in place. */
export interface SmmuStopView {
  features: SmmuFeatures;
  domain: Stage2Domain;
  /** The SMMU's device limit (AttachDevice's ENOSPC). */
  maxDevices: number;
  devices: ReadonlyMap<number, DeviceRecord>;
  deviceByVirtualSid(virtualStreamId: number): DeviceRecord | undefined;
  pasidTable: GuestStage1 | undefined;
}

const mismatch = (field: string, message: string) =>
  stateError(SMMU_STATE_FORMAT, "STATE_DELTA_MISMATCH", field, message);
const inconsistent = (field: string, message: string) =>
  stateError(SMMU_STATE_FORMAT, "STATE_INCONSISTENT", field, message);

/**
 * Checks a stop delta against the quiesced SMMU it is to change in place (issue 14: the
 * destination's finish costs what changed), with the rules a full import applies to the state
 * the delta makes (mergeSmmuDelta's, decodeSmmuState's and Smmu.importState's replay): removed
 * mappings and devices are the SMMU's (STATE_DELTA_MISMATCH, as mergeKeyed); each changed mapping
 * passes MAP_DMA's checks against the mappings left (Stage2Domain.checkChanges); each changed
 * device has a vSID within SIDSIZE that no device left holds, valid guest STE words
 * (arm_smmu_validate_vste), and the device limit holds; no guest STE beside a seed PASID table;
 * every page request names a device left with its vSID; the MSI binding passes BIND_MSI's checks.
 * A refusal is INVALID_ARGUMENT STATE_* naming the delta's entry; nothing is changed. Returns
 * the changed devices' records as the SMMU is to keep them.
 */
export function checkSmmuStopDelta(view: SmmuStopView, delta: SmmuDelta): DeviceRecord[] {
  const { state, mappings, devices } = delta;
  replaying("mappings", () =>
    view.domain.checkChanges(mappings, (field, message) => mismatch(`mappings.${field}`, message)),
  );
  const removed = new Set(devices.removed);
  devices.removed.forEach((sid, i) => {
    if (!view.devices.has(sid))
      throw mismatch(`devices.removed[${i}]`, `StreamID ${sid} has no device to remove`);
  });
  const changed = new Map(devices.changed.map((d) => [d.streamId, d]));
  const left = (sid: number) => !removed.has(sid) && !changed.has(sid);
  const vsids = new Set<number>();
  let count = view.devices.size - removed.size;
  const records = devices.changed.map((d, i): DeviceRecord => {
    const field = (name: string) => `devices.changed[${i}].${name}`;
    if (removed.has(d.streamId))
      throw mismatch(field("stream_id"), `${d.streamId} is both changed and removed`);
    if (d.virtualStreamId >= POW2[view.features.streamIdBits]!)
      throw inconsistent(
        field("virtual_stream_id"),
        `virtual StreamID ${d.virtualStreamId} is not below 2^${view.features.streamIdBits}`,
      );
    const holder = view.deviceByVirtualSid(d.virtualStreamId);
    if (vsids.has(d.virtualStreamId) || (holder && left(holder.streamId)))
      throw inconsistent(field("virtual_stream_id"), `virtual StreamID ${d.virtualStreamId} is taken`);
    vsids.add(d.virtualStreamId);
    if (!view.devices.has(d.streamId)) count++;
    const ste = d.guestSte;
    return {
      streamId: d.streamId,
      virtualStreamId: d.virtualStreamId,
      pageRequests: d.pageRequests,
      guestSte: ste && replaying(`devices.changed[${i}]`, () => validateGuestSte(ste[0], ste[1])),
      state: undefined,
    };
  });
  if (count > view.maxDevices) throw inconsistent("devices", `more than the ${view.maxDevices} devices kept`);
  // The decoder refused a changed device's guest STE beside the delta's table; the ones left:
  // none has one while a table is attached, so only a table newly attached needs the walk.
  if (state.pasidTable && !view.pasidTable) {
    for (const d of view.devices.values())
      if (left(d.streamId) && d.guestSte)
        throw inconsistent("pasid_table", `device ${d.streamId} keeps a guest STE: stage 1 has one owner`);
  }
  state.pageRequests.forEach((r, i) => {
    const device =
      changed.get(r.streamId) ?? (removed.has(r.streamId) ? undefined : view.devices.get(r.streamId));
    if (device === undefined)
      throw inconsistent(`page_requests[${i}].stream_id`, `StreamID ${r.streamId} has no device`);
    if (device.virtualStreamId !== r.virtualStreamId)
      throw inconsistent(
        `page_requests[${i}].virtual_stream_id`,
        `the device's virtual StreamID is ${device.virtualStreamId}`,
      );
  });
  const msi = state.msi;
  if (msi) replaying("msi", () => view.domain.msiBindingOf(msi.giova, msi.gpa, msi.size));
  return records;
}
