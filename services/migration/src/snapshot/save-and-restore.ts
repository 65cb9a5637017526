// Save and restore as operation bodies. Save: quiesce → export → write the snapshot → resume (if
// asked). Restore: read and check the snapshot → import (quiesced) → resume. A failure after the
// source was quiesced resumes it; a failure after an import releases what was imported.
import type { Any } from "@vplane/proto/gen/google/protobuf/any";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import { Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { Snapshot } from "@vplane/proto/gen/vplane/migration/v1/snapshot";
import { VPLANE_VERSION, VplaneError } from "@vplane/service-kit";
import type { HostDevices } from "../devices/host-devices.js";
import type { PausedVmJournal } from "../devices/paused-vm-journal.js";
import type { OperationContext } from "../operations/migration-operations.js";
import type { SnapshotStore } from "./snapshot-store.js";

const SNAPSHOT_TYPE = "type.googleapis.com/vplane.migration.v1.Snapshot";

export async function saveSnapshot(
  context: OperationContext,
  devices: HostDevices,
  store: SnapshotStore,
  journal: PausedVmJournal,
  request: { vm: string; snapshotId: string; resume: boolean },
): Promise<Any> {
  const { vm } = request;
  context.update({ phase: Phase.PHASE_QUIESCING });
  await journal.paused(vm, context.name);
  try {
    // Not cut short by a cancel: the resume that undoes it must come after it.
    const dirtyPages = (await devices.quiesce(vm)).pages;
    context.checkpoint();
    context.update({ phase: Phase.PHASE_TRANSFERRING_DEVICE_STATE, dirtyPages });
    const sections = await devices.export(vm, context.signal);
    context.checkpoint();
    const snapshot = store.save(request.snapshotId, {
      vm,
      producerVersion: VPLANE_VERSION,
      createTimeMs: BigInt(Date.now()),
      sections,
      dirtyPages,
    });
    context.update({ deviceStateBytes: snapshot.sizeBytes });
    if (request.resume) await devices.resume(vm);
    await journal.cleared(vm); // running again, or suspended on purpose (resume false)
    return pack(snapshot);
  } catch (error) {
    await journal.resumeAfterFailure(vm, () => devices.resume(vm)); // it keeps running as it was
    throw error;
  }
}

export async function restoreSnapshot(
  context: OperationContext,
  devices: HostDevices,
  store: SnapshotStore,
  request: { snapshotId: string; vm: string; guestMemory: GuestMemory | undefined },
): Promise<Any> {
  const { body, snapshot } = store.load(request.snapshotId);
  if (body.vm !== request.vm) {
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: "SNAPSHOT_OF_ANOTHER_VM",
      field: "vm",
      message: `${snapshot.name} holds VM ${body.vm}'s devices, not VM ${request.vm}'s`,
    });
  }
  context.update({ phase: Phase.PHASE_TRANSFERRING_DEVICE_STATE, deviceStateBytes: snapshot.sizeBytes });
  await devices.import(request.vm, body.sections, request.guestMemory, context.signal);
  try {
    context.checkpoint();
    context.passPointOfNoReturn();
    context.update({ phase: Phase.PHASE_SWITCHING_OVER, dirtyPages: body.dirtyPages });
    await devices.resume(request.vm);
  } catch (error) {
    await devices.release(request.vm).catch(() => undefined);
    throw error;
  }
  return pack(snapshot);
}

function pack(snapshot: Snapshot): Any {
  return { typeUrl: SNAPSHOT_TYPE, value: Buffer.from(Snapshot.encode(snapshot).finish()) };
}
