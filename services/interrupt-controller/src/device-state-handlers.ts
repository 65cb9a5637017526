import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { VplaneError, badSection, decodeSection } from "@vplane/service-kit";
import {
  CONTROLLER_STATE_FORMAT_VERSION,
  decodeControllerState,
  type CheckedControllerState,
} from "@vplane/xive";
import type { ControllerRecord } from "./controller-config-store.js";
import { checkVmId, controllerName, type ControllerRegistry } from "./controller-registry.js";
import { checkGuestMemory } from "./guest-memory-binding.js";
import { LIMITS } from "./service-limits.js";

const KIND_OF_MODE = { XIVE: "xive", XICS: "xics" } as const;

/**
 * Checks the one section an interrupt controller imports and decodes its payload: kind "xive" or
 * "xics" matching the state's active mode, the VM's controller as device, a known format
 * version, and a payload libs/xive accepts in full. Any failure names sections[i].
 */
function checkedSection(vm: string, sections: readonly pb.DeviceSection[]): CheckedControllerState {
  if (sections.length === 0) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "SECTIONS_MISSING",
      message: "ImportDeviceState needs the controller's section",
      field: "sections",
    });
  }
  if (sections.length > 1) {
    throw badSection(
      1,
      "SECTION_UNEXPECTED",
      "a VM has one interrupt controller; only one section is imported here",
    );
  }
  const section = sections[0]!;
  if (section.kind !== "xive" && section.kind !== "xics") {
    throw badSection(0, "UNKNOWN_DEVICE_KIND", `kind "${section.kind}" is not "xive" or "xics"`, "kind");
  }
  if (section.device !== controllerName(vm)) {
    throw badSection(
      0,
      "SECTION_OF_ANOTHER_DEVICE",
      `device "${section.device}" is not ${controllerName(vm)}`,
      "device",
    );
  }
  const state = decodeSection(section, 0, CONTROLLER_STATE_FORMAT_VERSION, decodeControllerState);
  if (KIND_OF_MODE[state.activeMode] !== section.kind) {
    throw badSection(
      0,
      "SECTION_KIND_MISMATCH",
      `a "${section.kind}" section holds ${state.activeMode} state`,
      "kind",
    );
  }
  return state;
}

/**
 * vplane.devicestate.v1.DeviceStateService for the interrupt controllers, keyed by VM id: the
 * handlers find the VM's controller and translate; quiesce, export, import and resume are the
 * model's (libs/xive, xive.md §6).
 */
export function deviceStateHandlers(registry: ControllerRegistry, dataDir: string) {
  return {
    quiesceDevices: (request: pb.QuiesceDevicesRequest): pb.QuiesceDevicesResponse => {
      const { pages, pageSize } = registry.requireVm(request.vm).backend.quiesce();
      return { dirtyPages: pages, pageSize: BigInt(pageSize) };
    },

    exportDeviceState: (request: pb.ExportDeviceStateRequest): pb.ExportDeviceStateResponse => {
      const { kind, formatVersion, payload } = registry.requireVm(request.vm).backend.exportState();
      const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      return { sections: [{ kind, device: controllerName(request.vm), formatVersion, payload: bytes }] };
    },

    importDeviceState: async (
      request: pb.ImportDeviceStateRequest,
    ): Promise<pb.ImportDeviceStateResponse> => {
      checkVmId(request.vm, "vm");
      const state = checkedSection(request.vm, request.sections);
      const path = request.guestMemory?.path ?? "";
      const requested = request.guestMemory?.sizeBytes ?? 0n;
      const sizeBytes = requested === 0n ? BigInt(state.guestMemoryBytes) : requested;
      const memory = checkGuestMemory(path, sizeBytes, dataDir, "guest_memory");
      if (memory.sizeBytes !== state.guestMemoryBytes) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "GUEST_MEMORY_SIZE_MISMATCH",
          message: `the state was exported with ${state.guestMemoryBytes} bytes of guest RAM, not ${memory.sizeBytes}`,
          field: "guest_memory.size_bytes",
        });
      }
      const record: ControllerRecord = {
        vm: request.vm,
        mode: state.mode,
        backend: "EMULATED",
        nrServers: state.nrServersSetting ?? LIMITS.maxServers,
        nrIrqs: state.nrIrqs,
        guestMemoryPath: path,
        guestMemoryBytes: memory.sizeBytes,
        createTime: new Date().toISOString(),
        createRequestId: request.requestId,
        // A restart replays the guest's CAS choice before the rest (SelectMode).
        ...(state.xive?.xiveSelected ? { selectedMode: "XIVE" as const } : {}),
      };
      await registry.importController(record, state, request.sections[0]!.payload);
      return { devices: [controllerName(request.vm)] };
    },

    resumeDevices: (request: pb.ResumeDevicesRequest): pb.ResumeDevicesResponse => {
      registry.requireVm(request.vm).backend.resume();
      return {};
    },

    releaseDevices: async (request: pb.ReleaseDevicesRequest): Promise<pb.ReleaseDevicesResponse> => {
      registry.requireVm(request.vm);
      await registry.delete(controllerName(request.vm));
      return { devices: [controllerName(request.vm)] };
    },
  };
}
