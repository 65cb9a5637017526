/**
 * The limits the interrupt-controller service enforces, reported in GetCapabilities. Requests
 * beyond a per-request limit are INVALID_ARGUMENT; beyond a host-wide one RESOURCE_EXHAUSTED.
 */
export const LIMITS = {
  /** KVMPPC_XIVE_NR_IRQS: source numbers are below it (xive.md §1.2). */
  maxSources: 1024 * 1024,
  /** Server ids per controller after KVM's clamp (KVM_MAX_VCPUS). */
  maxServers: 2048,
  /** Entries in one InitSources / ConfigureSources / SyncSources request. */
  maxConfigBatch: 4096,
  /** Sources in one TriggerSources request. */
  maxTriggerBatch: 65536,
  /** Hypercall arguments (R4..R12). */
  maxHcallArgs: 9,
  /** vCPU signal events each controller keeps for resuming watchers. */
  signalBuffer: 4096,
  /** Concurrent WatchVcpuSignals streams per controller. */
  maxWatchersPerController: 16,
  /** Smallest and largest guest RAM (GuestMemory.size_bytes). */
  minGuestMemoryBytes: 1024 * 1024,
  maxGuestMemoryBytes: 16 * 1024 ** 4,
} as const;

/** Guest RAM of a controller created without a RAM file or size (private, sparse). */
export const DEFAULT_PRIVATE_RAM_BYTES = 1024 ** 3;

export function limitsForCapabilities(maxControllers: number): Record<string, bigint> {
  return {
    max_sources: BigInt(LIMITS.maxSources),
    max_servers: BigInt(LIMITS.maxServers),
    max_controllers: BigInt(maxControllers),
    max_config_batch: BigInt(LIMITS.maxConfigBatch),
    max_trigger_batch: BigInt(LIMITS.maxTriggerBatch),
    max_hcall_args: BigInt(LIMITS.maxHcallArgs),
    signal_buffer: BigInt(LIMITS.signalBuffer),
    max_watchers_per_controller: BigInt(LIMITS.maxWatchersPerController),
  };
}
