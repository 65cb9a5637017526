import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileGuestMemory } from "@vplane/guest-memory";
import { decodeSmmuState, type SmmuFeatures } from "@vplane/smmuv3";
import type { SmmuBackend } from "../smmu-backend.js";
import { EmulatedSmmuBackend } from "../emulated-smmu-backend.js";
import { CONTRACT_RAM_BYTES, type ContractRig } from "./contract-rig.js";

/** StreamID the emulated rig's device has (the kernel tier's edu device has its own). */
const EMULATED_STREAM_ID = 0x10;

/**
 * The contract rig on vplane's SMMUv3 model. `features`: the ones the native side's HW_INFO
 * reported (QEMU's SMMUv3 in the Arm tier), so both backends check guest structures against the
 * same SMMU.
 */
export function emulatedRig(features: Partial<SmmuFeatures> = {}): ContractRig {
  // One RAM file, each backend on its own view of it (a backend closes its memory with itself).
  const dir = mkdtempSync(join(tmpdir(), "vplane-contract-"));
  const path = join(dir, "ram");
  const memory = new FileGuestMemory(path, CONTRACT_RAM_BYTES);
  const open = (state?: Uint8Array): SmmuBackend => {
    const view = new FileGuestMemory(path, CONTRACT_RAM_BYTES);
    return state
      ? new EmulatedSmmuBackend(view, { imported: decodeSmmuState(state), vmid: 1, limits: {} })
      : new EmulatedSmmuBackend(view, { vmid: 1, features });
  };
  let backend = open();
  const peers: SmmuBackend[] = [];
  return {
    get backend() {
      return backend;
    },
    memory,
    streamId: EMULATED_STREAM_ID,
    emulatedPeer(state) {
      const peer = open(state);
      peers.push(peer);
      return peer;
    },
    reopen(state) {
      backend.close();
      backend = open(state);
    },
    async copy(source, target, length) {
      const signal = new AbortController().signal;
      const read = await backend.dma(EMULATED_STREAM_ID, undefined, source, { read: length }, signal);
      // The device's buffer holds what the read brought (zeros where it faulted), as edu's does.
      const data = read.data ?? new Uint8Array(length);
      await backend.dma(EMULATED_STREAM_ID, undefined, target, { write: data }, signal);
    },
    settle: () => Promise.resolve(),
    close() {
      for (const peer of peers) peer.close();
      backend.close();
      memory.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
