/**
 * The limits the iommu service enforces, reported in GetCapabilities. Beyond a per-request
 * limit: INVALID_ARGUMENT; beyond a host-wide or per-SMMU one: RESOURCE_EXHAUSTED.
 */
export const LIMITS = {
  /** Entries in one Invalidate request. */
  maxInvalidateBatch: 4096,
  /** Bytes in one DmaRead / DmaWrite. */
  maxDmaBytes: 1024 * 1024,
  /** Page-request rounds one DMA may go through before it gives up (each page may fault once). */
  maxPageRequestRounds: 256,
  /** Stream messages each SMMU keeps for resuming subscribers. */
  eventBuffer: 4096,
  /** Concurrent StreamEvents subscribers per SMMU. */
  maxSubscribersPerSmmu: 16,
  /** Devices per SMMU. */
  maxDevicesPerSmmu: 4096,
  /** Stage-2 mappings per SMMU (VFIO's dma_entry_limit). */
  maxMappingsPerSmmu: 65_535,
  /** IOTLB entries of an emulated SMMU before a full flush. */
  iotlbEntries: 4096,
  /** Largest event queue depth a caller may ask for. */
  maxEventQueueDepth: 65_536,
  /** Largest page-request timeout a caller may ask for, ms. */
  maxPageRequestTimeoutMs: 600_000,
  /** Smallest and largest guest RAM (GuestMemory.size_bytes). */
  minGuestMemoryBytes: 1024 * 1024,
  maxGuestMemoryBytes: 16 * 1024 ** 4,
} as const;

/** Guest RAM of an SMMU created without a RAM file or size (private, sparse). */
export const DEFAULT_PRIVATE_RAM_BYTES = 1024 ** 3;

export function limitsForCapabilities(maxSmmus: number): Record<string, bigint> {
  return {
    max_smmus: BigInt(maxSmmus),
    max_invalidate_batch: BigInt(LIMITS.maxInvalidateBatch),
    max_dma_bytes: BigInt(LIMITS.maxDmaBytes),
    event_buffer: BigInt(LIMITS.eventBuffer),
    max_subscribers_per_smmu: BigInt(LIMITS.maxSubscribersPerSmmu),
    max_devices_per_smmu: BigInt(LIMITS.maxDevicesPerSmmu),
    max_mappings_per_smmu: BigInt(LIMITS.maxMappingsPerSmmu),
    max_event_queue_depth: BigInt(LIMITS.maxEventQueueDepth),
  };
}
