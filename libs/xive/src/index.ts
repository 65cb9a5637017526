export { Errno, type ErrnoName } from "@vplane/model-kit";
export {
  HcallOpcode,
  HcallReturn,
  REG_MINUS_ONE,
  isXicsHcall,
  isXiveHcall,
  type HcallResult,
} from "./hcall-codes.js";
export { XiveError, kvmError, type XiveErrorCode, type XiveErrorFields } from "./xive-error.js";
export {
  ESB_FORWARD,
  ESB_LOAD,
  ESB_STORE,
  PQ,
  PQ_P,
  PQ_Q,
  decodeEsbLoad,
  decodeEsbStore,
  esbEoi,
  esbTrigger,
  formatPq,
  setPqValueOf,
} from "./esb.js";
export { decodeEas, easWord, encodeEasHi, encodeEasLo, endIndexOf, type Eas } from "./eas.js";
export * from "./kvm-attributes.js";
export * from "./pseries-layout.js";
export { STATUS_ASSERTED, STATUS_LSI, STATUS_PQ, SourceBlock, SourceTable } from "./source-table.js";
export { EndTable, SPAPR_NVT_BASE, XIVE_Q_GAP, queueEntries, type EndState } from "./end-table.js";
export { EventQueueReader, type QueueEntry } from "./event-queue-reader.js";
export {
  TM_ACK_CNT,
  TM_CPPR,
  TM_IPB,
  TM_LSMFB,
  TM_NSR,
  TM_PIPR,
  TM_QW1_NSR_EO,
  TM_QW1_OS,
  TM_SHIFT,
  TM_SPC_ACK_OS_REG,
  TM_SPC_SET_OS_PENDING,
  ThreadContext,
  TimaPage,
  ipbToPipr,
  priorityToIpb,
  type SignalSink,
} from "./thread-context.js";
export { TriggerOutcome, XiveRouter, type RouterCounters, type TriggerOutcomeValue } from "./xive-router.js";
export { DEFAULT_MAX_VCPUS, DEFAULT_MAX_VCPU_IDS, checkNrServers } from "./nr-servers.js";
export { XiveDevice, type SourceState, type XiveDeviceOptions } from "./xive-device.js";
export { XiveSource, type XiveStopState } from "./xive-source.js";
export { restoredSourceConfig } from "./restored-source-config.js";
export {
  QUEUE_ALWAYS_NOTIFY,
  QUEUE_DEBUG,
  ESB_STORE_FLAG,
  SourceConfigFlag,
  SourceInfoFlag,
  SpaprXiveHcalls,
} from "./spapr-hcalls.js";
export type { InKernelXive } from "./in-kernel-xive.js";
export { Icp, XICS_IPI, type IcsPort } from "./xics/icp.js";
export { Ics, type IcsSourceState } from "./xics/ics.js";
export { RtasReturn, XicsDevice, type XicsDeviceOptions } from "./xics/xics-device.js";
export type { ActiveMode, ControllerMode } from "./controller-mode.js";
export {
  InterruptController,
  type ImportedControllerOptions,
  type ActiveDevice,
  type InterruptControllerOptions,
} from "./interrupt-controller.js";
export { dumpController, dumpXics, dumpXive } from "./pic-dump.js";
export {
  CONTROLLER_STATE_FORMAT_VERSION,
  type ControllerHeader,
  type ControllerState,
  type IcpRecord,
  type IcsSourceRecord,
  type XicsState,
  type XiveQueueState,
  type XiveSourceState,
  type XiveState,
} from "./device-state/controller-state.js";
export {
  decodeControllerState,
  type CheckedControllerState,
} from "./device-state/decode-controller-state.js";
export { encodeControllerState } from "./device-state/encode-controller-state.js";
export {
  CONTROLLER_DELTA_MAGIC,
  mergeControllerDelta,
  type ControllerDelta,
  type KeyedChanges,
} from "./device-state/controller-delta.js";
export { controllerDeltaSize, encodeControllerDelta } from "./device-state/encode-controller-delta.js";
export { decodeControllerDelta } from "./device-state/decode-controller-delta.js";
export { firstDeltaAsState } from "./device-state/first-delta-state.js";
export { StoppedTriggers } from "./stopped-triggers.js";
