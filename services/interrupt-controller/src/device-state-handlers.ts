import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { VplaneError, badSection, inSection } from "@vplane/service-kit";
import type { ControllerRecord } from "./controller-config-store.js";
import { checkVmId, controllerName, type ControllerRegistry } from "./controller-registry.js";
import { STATE_KIND_OF_MODE, readControllerState } from "./controller-state-format.js";
import { checkGuestMemory } from "./guest-memory-binding.js";
import { backendOf } from "./proto-mapping.js";

const KINDS: readonly string[] = Object.values(STATE_KIND_OF_MODE);

/**
 * The one section an interrupt controller imports: kind "xive" or "xics", the VM's controller as
 * device. Its payload is the state format's to read (readControllerState).
 */
function controllerSection(vm: string, sections: readonly pb.DeviceSection[]): pb.DeviceSection {
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
  if (!KINDS.includes(section.kind)) {
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
  return section;
}

/**
 * vplane.devicestate.v1.DeviceStateService for the interrupt controllers, keyed by VM id: the
 * handlers find the VM's controller and translate; quiesce, export, import and resume are the
 * backend's, in the state format every backend shares (controller-state-format.ts, xive.md §6).
 */
export function deviceStateHandlers(registry: ControllerRegistry, dataDir: string) {
  return {
    quiesceDevices: (request: pb.QuiesceDevicesRequest): pb.QuiesceDevicesResponse => {
      const { pages, pageSize } = registry.requireVm(request.vm).backend.quiesce();
      return { dirtyPages: pages, pageSize: BigInt(pageSize) };
    },

    exportDeviceState: (request: pb.ExportDeviceStateRequest): pb.ExportDeviceStateResponse => {
      const { kind, formatVersion, payload } = registry.requireVm(request.vm).backend.exportState();
      // From here what a trigger would change has left with the state (issue 17 point 1).
      registry.seals.exported(request.vm, request.destination ?? "");
      const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      return { sections: [{ kind, device: controllerName(request.vm), formatVersion, payload: bytes }] };
    },

    importDeviceState: async (
      request: pb.ImportDeviceStateRequest,
    ): Promise<pb.ImportDeviceStateResponse> => {
      checkVmId(request.vm, "vm");
      const backend = backendOf(request.backend, "backend");
      const section = controllerSection(request.vm, request.sections);
      const imported = inSection(0, () => readControllerState(section.payload, section));
      const path = request.guestMemory?.path ?? "";
      const requested = request.guestMemory?.sizeBytes ?? 0n;
      const sizeBytes = requested === 0n ? BigInt(imported.guestMemoryBytes) : requested;
      const memory = checkGuestMemory(path, sizeBytes, dataDir, "guest_memory");
      if (memory.sizeBytes !== imported.guestMemoryBytes) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "GUEST_MEMORY_SIZE_MISMATCH",
          message: `the state was exported with ${imported.guestMemoryBytes} bytes of guest RAM, not ${memory.sizeBytes}`,
          field: "guest_memory.size_bytes",
        });
      }
      const record: ControllerRecord = {
        vm: request.vm,
        ...imported.spec,
        // Either backend imports either backend's state (one format): a VM moves between a host
        // with the KVM XIVE device and one without. NATIVE on a host without it: the probe's reason.
        backend,
        guestMemoryPath: path,
        guestMemoryBytes: memory.sizeBytes,
        createTime: new Date().toISOString(),
        createRequestId: request.requestId,
        // A restart replays the guest's CAS choice before the rest (SelectMode).
        ...(imported.selectedMode ? { selectedMode: imported.selectedMode } : {}),
      };
      await registry.importController(record, imported);
      return { devices: [controllerName(request.vm)] };
    },

    resumeDevices: (request: pb.ResumeDevicesRequest): pb.ResumeDevicesResponse => {
      registry.requireVm(request.vm).backend.resume();
      registry.seals.resumed(request.vm);
      return {};
    },

    releaseDevices: async (request: pb.ReleaseDevicesRequest): Promise<pb.ReleaseDevicesResponse> => {
      registry.requireVm(request.vm);
      await registry.delete(controllerName(request.vm));
      registry.seals.released(request.vm);
      return { devices: [controllerName(request.vm)] };
    },
  };
}
