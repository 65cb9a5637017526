import {
  PASID_FORMAT_SMMUV3,
  PasidConfig,
  type DeviceState,
  type SmmuDelta,
  type SmmuState,
} from "@vplane/smmuv3";
import type { TransactionOp } from "@vplane/store";
import {
  configChanges,
  keyedConfigWrites,
  type DeviceRecord,
  type PasidTableRecord,
  type SmmuConfig,
  type SmmuRecord,
} from "./smmu-config-store.js";
import type { ImportedSmmuState } from "./smmu-state-format.js";

/**
 * The durable configuration of an SMMU made by ImportDeviceState. The source host's records do
 * not travel with the state, so they are derived from it, as the calls a restart replays would
 * give them: the stage-2 mappings, each device with its vSID and page-request capability and
 * its guest STE words as the guest gave them (the HWPT flag that linked a fault queue is folded
 * into the device's page-request capability, which is what it set), the seed PASID table as the
 * ATTACH_PASID_TABLE that installs the same stage 1, and the MSI binding. Runtime state (held
 * events, page requests, counters) is not durable, as for a created SMMU.
 */
export function importedSmmuConfig(record: SmmuRecord, { state }: ImportedSmmuState): SmmuConfig {
  return {
    record,
    mappings: state.mappings.map((m) => ({ ...m })),
    devices: state.devices.map(deviceRecordOf),
    ...stage1Records(state),
  };
}

/** A device's durable record as importedSmmuConfig derives it. */
function deviceRecordOf(d: DeviceState): DeviceRecord {
  return {
    streamId: d.streamId,
    virtualStreamId: d.virtualStreamId,
    pageRequests: d.pageRequests,
    ...(d.guestSte
      ? { guestSte: { ste0: d.guestSte[0].toString(), ste1: d.guestSte[1].toString(), flags: 0 } }
      : {}),
  };
}

/** The seed PASID table and MSI binding records of a state (whole in every delta too). */
function stage1Records(state: SmmuState): Pick<SmmuConfig, "pasidTable" | "msi"> {
  return {
    ...(state.pasidTable ? { pasidTable: seedAttachOf(state.pasidTable) } : {}),
    ...(state.msi ? { msi: { iova: state.msi.giova, gpa: state.msi.gpa, size: state.msi.size } } : {}),
  };
}

/**
 * The durable part of a stop delta applied in place (issue 14): the records importedSmmuConfig
 * would derive for what the delta changed (its mappings and devices, the seed PASID table and
 * MSI binding), and the writes that make them so from `before` (the SMMU's records until now):
 * only what the delta names, never the whole configuration.
 */
export function importedStopChanges(
  before: SmmuConfig,
  delta: SmmuDelta,
): {
  ops: TransactionOp[];
  devices: { changed: DeviceRecord[]; removed: number[] };
} & Pick<SmmuConfig, "pasidTable" | "msi"> {
  const stage1 = stage1Records(delta.state);
  const devices = { changed: delta.devices.changed.map(deviceRecordOf), removed: delta.devices.removed };
  const ops = [
    ...keyedConfigWrites(before.record, { mappings: delta.mappings, devices }),
    ...configChanges(
      { record: before.record, mappings: [], devices: [], ...pick(before) },
      { record: before.record, mappings: [], devices: [], ...stage1 },
    ),
  ];
  return { ops, devices, ...stage1 };
}

const pick = ({ pasidTable, msi }: SmmuConfig) => ({
  ...(pasidTable ? { pasidTable } : {}),
  ...(msi ? { msi } : {}),
});

/** The seed ATTACH_PASID_TABLE (digest §1.2) whose replay installs `stage1` again. */
function seedAttachOf(stage1: NonNullable<SmmuState["pasidTable"]>): PasidTableRecord {
  const config = { abort: PasidConfig.ABORT, bypass: PasidConfig.BYPASS, translate: PasidConfig.TRANSLATE };
  return {
    version: 1,
    format: PASID_FORMAT_SMMUV3,
    basePtr: stage1.kind === "translate" ? String(stage1.contextPtr) : "0",
    pasidBits: 0,
    config: config[stage1.kind],
    smmuv3: { version: 1, s1fmt: 0, s1dss: 0 },
  };
}
