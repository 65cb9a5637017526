import { StateWriter } from "@vplane/model-kit";
import {
  CONTROLLER_DELTA_MAGIC,
  DELTA_LISTS,
  type ControllerDelta,
  type KeyedChanges,
} from "./controller-delta.js";
import { CONTROLLER_STATE_FORMAT, RECORD_BYTES } from "./controller-state.js";
import {
  requestedEndsSize,
  writeHeader,
  writeIcp,
  writeIcsSource,
  writeList,
  writeMachineSources,
  writeRequestedEnds,
  writeU32List,
  writeVcpus,
  writeXiveContext,
  writeXiveQueue,
  writeXiveSource,
} from "./encode-controller-state.js";

const keyedSize = (c: KeyedChanges<unknown>, recordBytes: number) =>
  8 + c.changed.length * recordBytes + c.removed.length * 4;

/** The bytes encodeControllerDelta writes: what a pre-copy read of it moves. */
export function controllerDeltaSize(delta: ControllerDelta): number {
  let size = RECORD_BYTES.header + 4 + 4 + delta.stoppedTriggers.length * RECORD_BYTES.stoppedTrigger;
  if (delta.vcpus) size += 4 + delta.vcpus.length * RECORD_BYTES.vcpu;
  if (delta.machineSources) size += 4 + delta.machineSources.length * RECORD_BYTES.machineSource;
  if (delta.xive) {
    size +=
      keyedSize(delta.xive.sources, RECORD_BYTES.xiveSource) +
      keyedSize(delta.xive.queues, RECORD_BYTES.xiveQueue) +
      keyedSize(delta.xive.contexts, RECORD_BYTES.xiveContext) +
      requestedEndsSize(delta.xive.sources.changed);
  }
  if (delta.xics) {
    size +=
      keyedSize(delta.xics.sources, RECORD_BYTES.icsSource) + keyedSize(delta.xics.icps, RECORD_BYTES.icp);
  }
  return size;
}

function writeKeyed<T>(w: StateWriter, c: KeyedChanges<T>, write: (w: StateWriter, record: T) => void): void {
  writeList(w, c.changed, write);
  writeU32List(w, c.removed);
}

/** Encodes a pre-copy delta (layout: controller-delta.ts). */
export function encodeControllerDelta(delta: ControllerDelta): Uint8Array {
  const w = new StateWriter(controllerDeltaSize(delta), CONTROLLER_STATE_FORMAT);
  writeHeader(w, delta.header, CONTROLLER_DELTA_MAGIC);
  w.u8((delta.vcpus ? DELTA_LISTS.VCPUS : 0) | (delta.machineSources ? DELTA_LISTS.MACHINE_SOURCES : 0));
  w.zeros(3);
  if (delta.vcpus) writeVcpus(w, delta.vcpus);
  if (delta.machineSources) writeMachineSources(w, delta.machineSources);
  writeU32List(w, delta.stoppedTriggers);
  if (delta.xive) {
    writeKeyed(w, delta.xive.sources, writeXiveSource);
    writeKeyed(w, delta.xive.queues, writeXiveQueue);
    writeKeyed(w, delta.xive.contexts, writeXiveContext);
    writeRequestedEnds(w, delta.xive.sources.changed);
  }
  if (delta.xics) {
    writeKeyed(w, delta.xics.sources, writeIcsSource);
    writeKeyed(w, delta.xics.icps, writeIcp);
  }
  return w.bytes;
}
