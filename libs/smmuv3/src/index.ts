export { Smmu, DEFAULT_LIMITS, HWPT_FAULT_ID_VALID } from "./smmu.js";
export type { SmmuOptions, SmmuLimits, TranslateOptions, DmaOptions } from "./smmu.js";
export type { DeviceBinding } from "./smmu-device.js";
export type { SmmuDump } from "./smmu-dump.js";
export { splitAddress, type InvalidationOutcome } from "./command-handling.js";
export { DmaTransfer, type DmaResult, type TranslateAccess } from "./dma-transfer.js";
export { TranslationResult, type TranslationOutcome } from "./translation-result.js";
export { Perm, requiredPerm } from "./access-permission.js";
export { SmmuError, Errno, type SmmuErrorCode, type SmmuErrorInit } from "./smmu-error.js";
export {
  DEFAULT_FEATURES,
  resolveFeatures,
  encodeIdRegisters,
  decodeIdRegisters,
  ADDRESS_SIZE_BITS,
  type SmmuFeatures,
} from "./features.js";
export {
  EventId,
  EventClass,
  eventName,
  encodeEventRecord,
  decodeEventRecord,
  eventRecordWords,
  type SmmuEvent,
} from "./event-record.js";
export { EventQueue, VEVENTQ_FLAG_LOST_EVENTS, SEQUENCE_MASK, type QueuedEvent } from "./event-queue.js";
export {
  FaultReason,
  FaultFlags,
  FaultPerm,
  unrecoverableFaultFromEvent,
  type UnrecoverableFault,
} from "./seed-fault-report.js";
export {
  PageRequestQueue,
  PageResponseCode,
  PageRequestFlags,
  type PageRequest,
  type PageRequestOutcome,
} from "./page-request-queue.js";
export {
  applyPasidTableConfig,
  PasidConfig,
  PASID_FORMAT_SMMUV3,
  type PasidTableConfig,
} from "./pasid-table-config.js";
export {
  validateGuestSte,
  SteConfig,
  S1Dss,
  S1Fmt,
  STE0_NESTING_ALLOWED,
  STE1_NESTING_ALLOWED,
  type GuestSte,
  type GuestStage1,
} from "./stream-table-entry.js";
export {
  decodeContextDescriptor,
  encodeContextDescriptor,
  type ContextDescriptor,
  type ContextDescriptorFields,
  type TranslationTable,
} from "./context-descriptor.js";
export {
  planSeedInvalidation,
  CacheType,
  InvalidateGranularity,
  AddrInfoFlags,
  PasidInfoFlags,
  type CacheInvalidateInfo,
  type SeedInvalidation,
} from "./seed-cache-invalidate.js";
export {
  CommandOpcode,
  commandName,
  buildCommand,
  opcodeOf,
  cfgiSid,
  tlbiRange,
  type RawCommand,
  type TlbiRange,
} from "./invalidation-command.js";
export { validateGuestCommand } from "./guest-command.js";
export { Stage2Domain, type Stage2Mapping, type MsiBinding } from "./stage2-domain.js";
export { levelShift, startLevelFor, type GranuleBits } from "./translation-granule.js";
export { Iotlb, TlbEntry } from "./iotlb.js";
export { StreamDelivery, type Delivery, type HeldPageRequest } from "./stream-delivery.js";
export {
  SMMU_STATE_FORMAT_VERSION,
  type SmmuState,
  type DeviceState,
  type EventState,
  type PageRequestState,
} from "./device-state/smmu-state.js";
export { decodeSmmuState } from "./device-state/decode-smmu-state.js";
export { encodeSmmuState } from "./device-state/encode-smmu-state.js";
export {
  SMMU_DELTA_MAGIC,
  decodeSmmuDelta,
  encodeSmmuDelta,
  mergeSmmuDelta,
  smmuDeltaSize,
  type SmmuDelta,
} from "./device-state/smmu-delta.js";
