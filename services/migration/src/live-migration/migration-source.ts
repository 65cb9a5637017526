// The source side of a live migration, as an operation body:
//   setting up   open the stream to the destination's migration service, reserve the VM there
//   copying RAM  the RAM file in chunks with CRC-32 while the VM runs (unless the VMM moves RAM)
//   quiescing    pause the devices (downtime starts); resend the pages they dirtied
//   device state export, send as a snapshot, the destination imports it (quiesced)
//   switching    the destination resumes and acknowledges; the source sends commit, which makes
//                the VM the destination's, half-closes the stream and releases its own devices
// Any failure or cancel before switchover aborts the stream (the destination discards all it
// holds) and resumes the source's devices if they were paused.
import { rm } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type { FileHandle } from "node:fs/promises";
import type { Any } from "@vplane/proto/gen/google/protobuf/any";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { OperationProgress, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import type { StartMigrationRequest } from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import {
  VPLANE_VERSION,
  VplaneError,
  clientChannelOptions,
  clientCredentials,
  type TlsFiles,
} from "@vplane/service-kit";
import type { HostDevices } from "../devices/host-devices.js";
import type { OperationContext } from "../operations/migration-operations.js";
import { encodeSnapshot } from "../snapshot/snapshot-codec.js";
import { openRamForReading, resolveRamPath } from "./guest-ram-file.js";
import type { PausedVmJournal } from "../devices/paused-vm-journal.js";
import { PeerStream } from "./peer-stream.js";

const PROGRESS_TYPE = "type.googleapis.com/vplane.migration.v1.OperationProgress";

export interface MigrationSourceOptions {
  dataDir: string;
  /** Where a pause is recorded before it happens, for a restart to undo. */
  journal: PausedVmJournal;
  chunkBytes: number;
  maxSnapshotBytes: number;
  tls?: Partial<TlsFiles>;
}

export async function migrateOut(
  context: OperationContext,
  devices: HostDevices,
  request: StartMigrationRequest,
  options: MigrationSourceOptions,
): Promise<Any> {
  const { vm } = request;
  const ramBytes = request.vmmMovesRam ? 0n : (request.guestMemory?.sizeBytes ?? 0n);
  const ramPath = ramBytes > 0n ? resolveRamPath(options.dataDir, request.guestMemory!.path) : undefined;
  const ram = ramPath ? await openRamForReading(ramPath, ramBytes) : undefined;
  const client = new MigrationServiceClient(
    request.destination,
    clientCredentials(options.tls),
    clientChannelOptions(),
  );
  const peer = new PeerStream(client.receiveMigration());
  context.signal.addEventListener("abort", () => peer.abort(), { once: true });
  let quiescedAt: number | undefined;
  let committed = false;
  try {
    context.update({ ramBytesTotal: ramBytes });
    await peer.send({
      $case: "setup",
      value: {
        vm,
        operation: context.name,
        ramSizeBytes: ramBytes,
        sourceVersion: VPLANE_VERSION,
        guestMemory: request.vmmMovesRam ? request.destinationGuestMemory : undefined,
      },
    });
    await peer.expect("ready");

    if (ram) {
      context.update({ phase: Phase.PHASE_COPYING_RAM });
      await copyRam(context, peer, ram, ramBytes, options.chunkBytes);
      await peer.expect("ramBytesReceived");
    }

    context.checkpoint();
    context.update({ phase: Phase.PHASE_QUIESCING });
    await options.journal.paused(vm, context.name);
    quiescedAt = Date.now();
    // Not cut short by a cancel: the resume that undoes it must come after it.
    const dirty = await devices.quiesce(vm);
    context.checkpoint();
    context.update({ dirtyPages: dirty.pages });
    // The devices wrote these pages (event queues) after the RAM copy read them: send them again.
    if (ram) for (const page of dirty.pages) await sendRange(peer, ram, page, dirty.pageSize);

    context.update({ phase: Phase.PHASE_TRANSFERRING_DEVICE_STATE });
    const sections = await devices.export(vm, context.signal, request.destination);
    const snapshot = encodeSnapshot(
      {
        vm,
        producerVersion: VPLANE_VERSION,
        createTimeMs: BigInt(Date.now()),
        sections,
        // Not the dirty pages: the destination has no use for them (they were re-sent above, or
        // the VMM moves them), and the list is as long as the vCPUs × queues.
        dirtyPages: [],
      },
      options.maxSnapshotBytes,
    );
    context.update({ deviceStateBytes: BigInt(snapshot.length) });
    await peer.send({ $case: "deviceState", value: snapshot });
    await peer.expect("devicesImported");
    context.checkpoint();
    const paused = Date.now() - quiescedAt;
    if (request.downtimeLimitMs > 0 && paused > request.downtimeLimitMs) {
      throw new VplaneError({
        code: "DEADLINE_EXCEEDED",
        reason: "DOWNTIME_LIMIT_EXCEEDED",
        message: `devices paused ${paused} ms before switchover, over the limit of ${request.downtimeLimitMs} ms`,
      });
    }

    context.passPointOfNoReturn();
    context.update({ phase: Phase.PHASE_SWITCHING_OVER });
    await peer.send({ $case: "switchover", value: true });
    await peer.expect("switchedOver");
    context.update({ downtimeMs: BigInt(Date.now() - quiescedAt) });
    // The commit message makes the VM the destination's; from here it is there.
    await options.journal.committing(vm, context.name);
    await peer.send({ $case: "commit", value: true });
    committed = true;
    peer.finish();
    // Devices left behind here are paused and unreachable by the guest: not worth failing for.
    await devices.release(vm).catch(() => undefined);
    await options.journal.cleared(vm);
    return {
      typeUrl: PROGRESS_TYPE,
      value: Buffer.from(OperationProgress.encode(context.progress).finish()),
    };
  } catch (error) {
    if (committed) throw error;
    peer.abort(); // the destination discards everything it holds
    // The VM goes on here.
    if (quiescedAt !== undefined) await options.journal.resumeAfterFailure(vm, () => devices.resume(vm));
    throw error;
  } finally {
    await ram?.close();
    client.close();
    // The RAM now lives on the destination; a copy left here would block the VM's way back.
    if (committed && ramPath) await rm(ramPath, { force: true });
  }
}

async function copyRam(
  context: OperationContext,
  peer: PeerStream,
  ram: FileHandle,
  size: bigint,
  chunkBytes: number,
) {
  for (let offset = 0n; offset < size; offset += BigInt(chunkBytes)) {
    context.checkpoint();
    const length = size - offset < BigInt(chunkBytes) ? size - offset : BigInt(chunkBytes);
    await sendRange(peer, ram, offset, length);
    context.update({ ramBytesTransferred: offset + length });
  }
}

async function sendRange(peer: PeerStream, ram: FileHandle, offset: bigint, length: bigint) {
  const data = Buffer.alloc(Number(length));
  const { bytesRead } = await ram.read(data, 0, data.length, Number(offset));
  const chunk = data.subarray(0, bytesRead);
  await peer.send({ $case: "ramChunk", value: { offset, data: chunk, crc32: crc32(chunk) } });
}
