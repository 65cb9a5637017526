import { StateWriter } from "@vplane/model-kit";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  CONTROLLER_STATE_FORMAT,
  CONTROLLER_STATE_MAGIC,
  HEADER_FLAG,
  MODE_CODE,
  RECORD_BYTES,
  type ControllerState,
} from "./controller-state.js";

function encodedSize(state: ControllerState): number {
  let size =
    RECORD_BYTES.header +
    12 +
    state.vcpus.length * RECORD_BYTES.vcpu +
    state.machineSources.length * RECORD_BYTES.machineSource +
    state.stoppedTriggers.length * RECORD_BYTES.stoppedTrigger;
  if (state.xive) {
    size +=
      12 +
      state.xive.sources.length * RECORD_BYTES.xiveSource +
      state.xive.queues.length * RECORD_BYTES.xiveQueue +
      state.xive.contexts.length * RECORD_BYTES.xiveContext;
  }
  if (state.xics) {
    size +=
      8 + state.xics.sources.length * RECORD_BYTES.icsSource + state.xics.icps.length * RECORD_BYTES.icp;
  }
  return size;
}

/** Encodes a controller's state in format version 1 (layout: controller-state.ts). */
export function encodeControllerState(state: ControllerState): Uint8Array {
  const w = new StateWriter(encodedSize(state), CONTROLLER_STATE_FORMAT);
  w.u32(CONTROLLER_STATE_FORMAT_VERSION);
  w.u32(CONTROLLER_STATE_MAGIC);
  w.u8(MODE_CODE[state.mode]);
  w.u8(MODE_CODE[state.activeMode]);
  w.u8(
    (state.xive?.xiveSelected ? HEADER_FLAG.XIVE_SELECTED : 0) |
      (state.storeEoi ? HEADER_FLAG.STORE_EOI : 0) |
      (state.nrServersSetting !== undefined ? HEADER_FLAG.NR_SERVERS_SET : 0),
  );
  w.u8(state.hvPriority);
  w.u32(state.nrIrqs);
  w.u32(state.nrServersSetting ?? 0);
  w.u32(state.maxVcpus);
  w.u32(state.maxVcpuIds);
  w.u8(state.hostPageShift);
  w.u8(0);
  w.u16(0);
  w.u64(state.guestMemoryBytes);
  w.u64(0);

  w.u32(state.vcpus.length);
  for (const v of state.vcpus) {
    w.u32(v.vcpuId);
    w.u32(v.server);
  }
  w.u32(state.machineSources.length);
  for (const s of state.machineSources) {
    w.u32(s.irq);
    w.u8(s.lsi ? 1 : 0);
  }
  w.u32(state.stoppedTriggers.length);
  for (const irq of state.stoppedTriggers) w.u32(irq);

  if (state.xive) {
    const { sources, queues, contexts } = state.xive;
    w.u32(sources.length);
    for (const s of sources) {
      w.u32(s.irq);
      w.u8(s.pq | (s.asserted ? 4 : 0) | (s.lsi ? 8 : 0));
      w.u8(s.savedPq);
      w.u32(s.endIndex);
      w.u32(((s.masked ? 0x8000_0000 : 0) | s.eisn) >>> 0);
    }
    w.u32(queues.length);
    for (const q of queues) {
      w.u32(q.endIndex);
      w.u8((q.valid ? 1 : 0) | (q.alwaysNotify ? 2 : 0));
      w.u8(q.qshift);
      w.u8(q.generation);
      w.u8((q.esn << 2) | q.ese);
      w.u32(q.qindex);
      w.u64(q.qaddr);
      w.u64(q.entriesWritten);
      w.u32(q.targetedSources);
    }
    w.u32(contexts.length);
    for (const c of contexts) {
      w.u32(c.server);
      w.raw(c.regs);
    }
  }
  if (state.xics) {
    w.u32(state.xics.sources.length);
    for (const s of state.xics.sources) {
      w.u32(s.nr);
      w.u8(s.flags);
      w.u8(s.priority);
      w.u8(s.savedPriority);
      w.u8(s.status);
      w.u32(s.server);
    }
    w.u32(state.xics.icps.length);
    for (const icp of state.xics.icps) {
      w.u32(icp.server);
      w.u32(icp.xirr);
      w.u8(icp.pendingPriority);
      w.u8(icp.mfrr);
      w.u16(0);
    }
  }
  return w.bytes;
}
