import type { GuestMemory } from "@vplane/guest-memory";
import type { SmmuBackend } from "../smmu-backend.js";

/**
 * What the SMMU contract suite runs a scenario on: a fresh SMMU behind SmmuBackend, the guest
 * RAM it translates into, one assigned device (`streamId`) and that device's DMA. The emulated
 * rig's device is the backend's own DMA; the Arm kernel tier's is QEMU's `edu` PCI device
 * assigned through VFIO, translated by the real kernel's iommufd nesting on QEMU's SMMUv3.
 */
export interface ContractRig {
  /** The SMMU under test (replaced by reopen). */
  readonly backend: SmmuBackend;
  readonly memory: GuestMemory;
  /** The assigned device's physical StreamID. */
  readonly streamId: number;
  /**
   * The device copies `length` bytes from `source` to `target` (IOVAs) with two DMAs (a read
   * into the device, a write back out). A DMA that faults leaves its event in the backend's log.
   */
  copy(source: bigint, target: bigint, length: number): Promise<void>;
  /** Waits until the backend's log holds at least `count` messages (events arrive asynchronously on a native SMMU). */
  settle(count: number): Promise<void>;
  /** An emulated SMMU on the same guest RAM and device (new, or imported from an exported state); closed with the rig. */
  emulatedPeer(state?: Uint8Array): SmmuBackend;
  /** Replaces `backend` with one of the rig's own kind imported from `state` (quiesced until resume). */
  reopen(state: Uint8Array): void;
  close(): void;
}

/** Guest RAM of every contract rig: 16 MiB, mapped at IPA 0 (identity), read-write. */
export const CONTRACT_RAM_BYTES = 16 * 1024 * 1024;
