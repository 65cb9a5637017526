// The source side of a live migration, as an operation body:
//   setting up   open the stream to the destination's migration service, reserve the VM there
//   copying RAM  the RAM file in chunks with CRC-32 while the VM runs (unless the VMM moves RAM)
//   pre-copying  device state in iterations while the VM runs (device-precopy.ts); the
//                destination builds and makes it durable as it comes (skipped with
//                VPLANE_MIGRATION_DEVICE_PRECOPY=false: all of it moves in the stop)
//   quiescing    the downtime starts: StopAndCopy quiesces the devices and streams what is left
//   device state its chunks go on to the destination as they arrive (after the dirty pages,
//                when RAM is copied), and the destination applies them, resuming its devices;
//                the switchover rides on the very last chunk (or follows it at once when that
//                chunk could not be known to be the last; the StopAndCopy streams' status is
//                checked before the commit, not waited for inside the downtime)
//   switching    the destination's devices resume (the downtime ends) and make the import
//                durable; then it acknowledges, and only then the source sends commit, which
//                makes the VM the destination's, half-closes the stream and releases its own
//                devices: the source never lets go of a VM the destination could still lose
// The services' last chunks go on together, in one message (device_chunks), to a destination
// that takes them: a stream's second message reaches it an event-loop turn after the first.
// The downtime runs from the source's pause to the destination's resume, as the device services
// timestamp them: a chunk's three hops (device service → migration service → migration service
// → device service) lie between, StopAndCopy's call before and the acknowledgement after (issue
// 14). Any failure or cancel before the commit resumes the source's devices (which also ends
// their pre-copy) and ends the stream without a commit: the destination discards all it holds,
// and the operation ends once it has (so a cancelled migration leaves the destination empty).
import { rm } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type { FileHandle } from "node:fs/promises";
import type { Any } from "@vplane/proto/gen/google/protobuf/any";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { OperationProgress, Phase } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import type {
  DeviceStateStreamChunk,
  StartMigrationRequest,
} from "@vplane/proto/gen/vplane/migration/v1/live_migration";
import type { DeviceStateChunk } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import {
  VPLANE_VERSION,
  VplaneError,
  afterWrites,
  clientChannelOptions,
  wallClockUs,
  toVplaneError,
  clientCredentials,
  type TlsFiles,
} from "@vplane/service-kit";
import { pagesOf, type DirtyRange } from "../devices/dirty-pages.js";
import { MessageCount, ROLES, type DeviceRole, type HostDevices } from "../devices/host-devices.js";
import type { OperationContext } from "../operations/migration-operations.js";
import { openRamForReading, resolveRamPath } from "./guest-ram-file.js";
import type { PausedVmJournal } from "../devices/paused-vm-journal.js";
import { preCopyDevices, type PreCopyOutcome } from "./device-precopy.js";
import { PeerStream } from "./peer-stream.js";

const PROGRESS_TYPE = "type.googleapis.com/vplane.migration.v1.OperationProgress";
/** How long a failed or cancelled migration waits for the destination to discard what it holds. */
const ABANDON_WAIT_MS = 5_000;

export interface MigrationSourceOptions {
  dataDir: string;
  /** Where a pause is recorded before it happens, for a restart to undo. */
  journal: PausedVmJournal;
  chunkBytes: number;
  /** The no-progress timeout, which also bounds a pre-copy that does not converge, ms. */
  noProgressMs: number;
  /** false: no pre-copy iterations, the whole device state moves in the stop-and-copy. */
  devicePrecopy: boolean;
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
  // A cancel (or timeout) stops any wait for the destination at once; the catch below gives up.
  const interrupt = () => peer.interrupt(toVplaneError(context.signal.reason));
  if (context.signal.aborted) interrupt();
  else context.signal.addEventListener("abort", interrupt, { once: true });
  let started = false;
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
    started = true; // from here the devices track their changes until resumed or released
    let precopy: PreCopyOutcome = { roles: [...ROLES], bytes: 0, iterations: 0 };
    if (options.devicePrecopy) {
      context.update({ phase: Phase.PHASE_PRECOPYING_DEVICE_STATE });
      precopy = await preCopyDevices(context, devices, peer, vm, {
        downtimeLimitMs: request.downtimeLimitMs,
        noProgressMs: options.noProgressMs,
      });
    }

    context.checkpoint();
    context.update({ phase: Phase.PHASE_QUIESCING });
    await options.journal.paused(vm, context.name);
    // Without pre-copy, the stop finds the services that hold devices of the VM.
    const stop = await stopAndCopy(context, devices, peer, request, precopy, ram);
    context.update({
      downtimeMs: stop.downtimeUs / 1000n,
      downtimeUs: stop.downtimeUs,
      downtimeBoundUs: stop.boundUs,
      downtimeMessages: stop.messages,
      dirtyPages: stop.dirtyPages,
      deviceStopCopyBytes: BigInt(stop.bytes),
      deviceStateBytes: BigInt(precopy.bytes + stop.bytes),
    });
    const downtimeMs = Number(stop.downtimeUs) / 1000;
    if (request.downtimeLimitMs > 0 && downtimeMs > request.downtimeLimitMs) {
      // Not committed: the destination releases the devices it resumed, the VM goes on here.
      throw new VplaneError({
        code: "DEADLINE_EXCEEDED",
        reason: "DOWNTIME_LIMIT_EXCEEDED",
        message: `devices paused ${downtimeMs.toFixed(1)} ms, over the limit of ${request.downtimeLimitMs} ms`,
      });
    }

    context.passPointOfNoReturn();
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
    try {
      // The VM goes on here; resuming also ends the devices' pre-copy.
      if (started) await options.journal.resumeAfterFailure(vm, () => devices.resume(vm));
    } finally {
      // The destination discards everything it holds: ended only once it has.
      await peer.abandon(ABANDON_WAIT_MS);
    }
    throw error;
  } finally {
    context.signal.removeEventListener("abort", interrupt);
    await ram?.close();
    client.close();
    // The RAM now lives on the destination; a copy left here would block the VM's way back.
    if (committed && ramPath) await rm(ramPath, { force: true });
  }
}

/**
 * The downtime: StopAndCopy on every service at once, its chunks forwarded to the destination as
 * they arrive (held back until the pages the devices wrote are re-sent when RAM is copied: the
 * destination's devices must not resume before their queue pages are there), switchover on the
 * last of every service's last chunks, and the destination's acknowledgement once its devices
 * run and are durable. The downtime: pause → resume by the device services' clocks, or the
 * source's own bound when the destination's clock puts the resume outside it.
 */
async function stopAndCopy(
  context: OperationContext,
  devices: HostDevices,
  peer: PeerStream,
  request: StartMigrationRequest,
  precopy: PreCopyOutcome,
  ram: FileHandle | undefined,
): Promise<{ downtimeUs: bigint; boundUs: bigint; messages: number; bytes: number; dirtyPages: bigint[] }> {
  const messages = new MessageCount();
  const held: { service: DeviceRole; chunk: DeviceStateChunk }[] = [];
  /** The switchover rode on the last chunk: no message of its own. */
  let switchedOver = false;
  /** Services' last chunks held until every service's came: then sent in one message. */
  const lastChunks: DeviceStateStreamChunk[] = [];
  const send = (chunks: DeviceStateStreamChunk[]) => {
    messages.count++;
    return chunks.length === 1
      ? peer.send({ $case: "deviceChunk", value: chunks[0]! })
      : peer.send({ $case: "deviceChunks", value: { chunks } });
  };
  const forward = (service: DeviceRole, chunk: DeviceStateChunk, lastOfAll: boolean) => {
    switchedOver ||= lastOfAll;
    const forwarded = { service, iteration: 0, final: true, chunk, switchover: lastOfAll };
    if (!peer.takesDeviceChunks || !chunk.last) return send([forwarded]);
    lastChunks.push(forwarded);
    return lastOfAll ? send(lastChunks.splice(0)) : Promise.resolve();
  };
  const stopSentUs = wallClockUs();
  const stopped = await devices.stopAndCopy(
    request.vm,
    request.destination,
    precopy.roles,
    ram ? (service, chunk) => Promise.resolve(void held.push({ service, chunk })) : forward,
    messages,
    precopy.iterations === 0,
  );
  let switched: { deviceMessages: number; resumedAtUs: bigint };
  try {
    // Not known to be the last of all when they came (a service might have held nothing).
    if (lastChunks.length > 0) await send(lastChunks.splice(0));
    // The last chunks went to the stream (without RAM): the bookkeeping below waits until they
    // have left, rather than delaying them inside the downtime.
    if (!ram) await afterWrites();
    context.checkpoint();
    context.update({ phase: Phase.PHASE_TRANSFERRING_DEVICE_STATE });
    if (ram) {
      // The devices wrote these pages (event queues) after the RAM copy read them: send them again.
      for (const range of stopped.dirty) messages.count += await sendRange(peer, ram, range);
      for (const [i, { service, chunk }] of held.entries())
        await forward(service, chunk, i === held.length - 1);
    }
    context.checkpoint();
    context.update({ phase: Phase.PHASE_SWITCHING_OVER });
    messages.count++; // the acknowledgement
    if (!switchedOver) {
      messages.count++;
      await peer.send({ $case: "switchover", value: true });
    }
    switched = await peer.expect("switchedOverReport");
  } catch (error) {
    await stopped.ended.catch(() => undefined); // the resume that undoes the stop comes after it
    throw error;
  }
  const boundUs = wallClockUs() - stopSentUs;
  await stopped.ended; // each StopAndCopy ended OK: only then is the VM the destination's to take
  const paused = stopped.pausedAtUs;
  const resumed = switched.resumedAtUs;
  const inBound = paused >= stopSentUs && resumed >= paused && resumed - stopSentUs <= boundUs;
  return {
    downtimeUs: inBound ? resumed - paused : boundUs,
    boundUs,
    messages: messages.count + switched.deviceMessages,
    bytes: stopped.bytes,
    dirtyPages: pagesOf(stopped.dirty, stopped.pageSize).pages,
  };
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
    await sendRange(peer, ram, { address: offset, bytes: length });
    context.update({ ramBytesTransferred: offset + length });
  }
}

/** Sends a range of the RAM file in chunks of at most 1 MiB; how many messages that took. */
async function sendRange(peer: PeerStream, ram: FileHandle, range: DirtyRange): Promise<number> {
  const step = 1n << 20n;
  let sent = 0;
  for (let offset = range.address; offset < range.address + range.bytes; offset += step) {
    const end = range.address + range.bytes;
    const data = Buffer.alloc(Number(end - offset < step ? end - offset : step));
    const { bytesRead } = await ram.read(data, 0, data.length, Number(offset));
    const chunk = data.subarray(0, bytesRead);
    await peer.send({ $case: "ramChunk", value: { offset, data: chunk, crc32: crc32(chunk) } });
    sent++;
  }
  return sent;
}
