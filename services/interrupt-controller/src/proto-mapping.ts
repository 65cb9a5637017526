import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import {
  ActiveMode as ActiveModeProto,
  ControllerMode as ControllerModeProto,
  type Controller,
} from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { AccessKind, EsbPage, RtasCall } from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { VplaneError } from "@vplane/service-kit";
import type { ActiveMode, ControllerMode } from "@vplane/xive";
import type { RtasCallName } from "./controller-backend.js";
import { controllerName, type ControllerEntry } from "./controller-registry.js";

const invalid = (reason: string, message: string, field: string) =>
  new VplaneError({ code: "INVALID_ARGUMENT", reason, message, field });

export function controllerModeOf(mode: ControllerModeProto): ControllerMode {
  switch (mode) {
    case ControllerModeProto.CONTROLLER_MODE_XIVE:
      return "XIVE";
    case ControllerModeProto.CONTROLLER_MODE_XICS:
      return "XICS";
    case ControllerModeProto.CONTROLLER_MODE_DUAL:
      return "DUAL";
    default:
      throw invalid("MODE_UNSPECIFIED", "mode must be XIVE, XICS or DUAL", "controller.mode");
  }
}

const CONTROLLER_MODE_PROTO: Record<ControllerMode, ControllerModeProto> = {
  XIVE: ControllerModeProto.CONTROLLER_MODE_XIVE,
  XICS: ControllerModeProto.CONTROLLER_MODE_XICS,
  DUAL: ControllerModeProto.CONTROLLER_MODE_DUAL,
};

export function activeModeOf(mode: ActiveModeProto): ActiveMode {
  if (mode === ActiveModeProto.ACTIVE_MODE_XIVE) return "XIVE";
  if (mode === ActiveModeProto.ACTIVE_MODE_XICS) return "XICS";
  throw invalid("MODE_UNSPECIFIED", "mode must be XIVE or XICS", "mode");
}

export function isStore(kind: AccessKind): boolean {
  if (kind === AccessKind.ACCESS_KIND_LOAD) return false;
  if (kind === AccessKind.ACCESS_KIND_STORE) return true;
  throw invalid("ACCESS_KIND_UNSPECIFIED", "kind must be LOAD or STORE", "kind");
}

export function isManagementPage(page: EsbPage): boolean {
  if (page === EsbPage.ESB_PAGE_TRIGGER) return false;
  if (page === EsbPage.ESB_PAGE_MANAGEMENT) return true;
  throw invalid("ESB_PAGE_UNSPECIFIED", "page must be TRIGGER or MANAGEMENT", "page");
}

export function rtasCallOf(call: RtasCall): RtasCallName {
  switch (call) {
    case RtasCall.RTAS_CALL_SET_XIVE:
      return "SET_XIVE";
    case RtasCall.RTAS_CALL_GET_XIVE:
      return "GET_XIVE";
    case RtasCall.RTAS_CALL_INT_OFF:
      return "INT_OFF";
    case RtasCall.RTAS_CALL_INT_ON:
      return "INT_ON";
    default:
      throw invalid("RTAS_CALL_UNSPECIFIED", "call must name an RTAS call", "call");
  }
}

/** The Controller resource of an entry. */
export function controllerMessage(entry: ControllerEntry): Controller {
  const { record, backend } = entry;
  return {
    name: controllerName(record.vm),
    vm: record.vm,
    mode: CONTROLLER_MODE_PROTO[record.mode],
    activeMode:
      backend.activeMode === "XIVE" ? ActiveModeProto.ACTIVE_MODE_XIVE : ActiveModeProto.ACTIVE_MODE_XICS,
    nrServers: backend.nrServers,
    backend: record.backend === "NATIVE" ? Backend.BACKEND_NATIVE : Backend.BACKEND_EMULATED,
    guestMemory: { path: record.guestMemoryPath, sizeBytes: BigInt(record.guestMemoryBytes) },
    connectedServers: backend
      .connectedVcpus()
      .map((v) => v.server)
      .sort((a, b) => a - b),
    sourceCount: backend.sourceCount(),
    createTime: new Date(record.createTime),
    nrIrqs: record.nrIrqs,
  };
}
