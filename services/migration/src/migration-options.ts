import { option, dataDirOption } from "@vplane/service-kit";

/** The migration service's own options (beyond the server options every service has). */
export const migrationOptions = {
  dataDir: dataDirOption("data folder: snapshots/ and incoming guest RAM (guest-ram/{vm}.ram) live here"),
  interruptTarget: option.string({
    env: "VPLANE_MIGRATION_INTERRUPT_TARGET",
    flag: "interrupt-target",
    doc: "this host's interrupt-controller service (host:port), whose device state this service moves",
    default: "127.0.0.1:50051",
  }),
  iommuTarget: option.string({
    env: "VPLANE_MIGRATION_IOMMU_TARGET",
    flag: "iommu-target",
    doc: "this host's iommu service (host:port)",
    default: "127.0.0.1:50052",
  }),
  maxSnapshotBytes: option.integer({
    env: "VPLANE_MIGRATION_MAX_SNAPSHOT_BYTES",
    flag: "max-snapshot-bytes",
    doc: "largest device-state snapshot saved, restored or received, bytes",
    default: 256 * 1024 * 1024,
    min: 4096,
    max: 2 ** 31 - 1,
  }),
  ramChunkBytes: option.integer({
    env: "VPLANE_MIGRATION_RAM_CHUNK_BYTES",
    flag: "ram-chunk-bytes",
    doc: "guest RAM sent per stream message during a live migration, bytes (below the message size limit)",
    default: 1024 * 1024,
    min: 4096,
    max: 8 * 1024 * 1024,
  }),
  devicePrecopy: option.boolean({
    env: "VPLANE_MIGRATION_DEVICE_PRECOPY",
    flag: "device-precopy",
    doc: "move device state in pre-copy iterations while the VM runs (false: all of it in the stop-and-copy, inside the downtime; for comparison, or device services without pre-copy)",
    default: true,
  }),
  deviceCallTimeoutMs: option.integer({
    env: "VPLANE_MIGRATION_DEVICE_CALL_TIMEOUT_MS",
    flag: "device-call-timeout-ms",
    doc: "deadline of each call to a device service, ms",
    default: 30_000,
    min: 100,
    max: 600_000,
  }),
};
