import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import {
  VplaneError,
  badSection,
  inSection,
  withoutPreCopy,
  type DeviceStateHandlers,
  type ImportStream,
  type VmDevices,
} from "@vplane/service-kit";
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
 * Pre-copy (issue 14): no backend tracks its changes yet (withoutPreCopy).
 */
export function deviceStateHandlers(registry: ControllerRegistry, dataDir: string) {
  /** A controller from its one full section, quiesced and durable. */
  const importSections = async (
    { vm, sections, guestMemory, backend }: ImportStream,
    requestId: string,
  ): Promise<string[]> => {
    checkVmId(vm, "vm");
    const kind = backendOf(backend, "backend");
    const section = controllerSection(vm, sections);
    const imported = inSection(0, () => readControllerState(section.payload, section));
    const path = guestMemory?.path ?? "";
    const requested = guestMemory?.sizeBytes ?? 0n;
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
      vm,
      ...imported.spec,
      // Either backend imports either backend's state (one format): a VM moves between a host
      // with the KVM XIVE device and one without. NATIVE on a host without it: the probe's reason.
      backend: kind,
      guestMemoryPath: path,
      guestMemoryBytes: memory.sizeBytes,
      createTime: new Date().toISOString(),
      createRequestId: requestId,
      // A restart replays the guest's CAS choice before the rest (SelectMode).
      ...(imported.selectedMode ? { selectedMode: imported.selectedMode } : {}),
    };
    await registry.importController(record, imported);
    return [controllerName(vm)];
  };

  const quiesce = (vm: string) => {
    const { pages, pageSize } = registry.requireVm(vm).backend.quiesce();
    return { dirtyPages: pages, pageSize: BigInt(pageSize) };
  };

  const exportSections = (vm: string, destination: string): pb.DeviceSection[] => {
    const { kind, formatVersion, payload } = registry.requireVm(vm).backend.exportState();
    // From here what a trigger would change has left with the state (issue 17 point 1).
    registry.seals.exported(vm, destination);
    const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return [{ kind, device: controllerName(vm), formatVersion, payload: bytes }];
  };

  const devices: VmDevices = {
    requireRunning: (vm) => {
      if (registry.requireVm(vm).backend.quiesced) {
        throw new VplaneError({
          code: "FAILED_PRECONDITION",
          reason: "CONTROLLER_QUIESCED",
          field: "vm",
          message: `VM ${vm}'s controller is quiesced: its state moves in the stop-and-copy`,
        });
      }
    },
    checkVmId: (vm) => checkVmId(vm, "vm"),
    quiesce,
    exportSections,
    importSections,
    resume: (vm) => {
      registry.requireVm(vm).backend.resume();
      registry.seals.resumed(vm);
    },
  };

  return {
    quiesceDevices: (request: pb.QuiesceDevicesRequest): pb.QuiesceDevicesResponse => quiesce(request.vm),

    exportDeviceState: (request: pb.ExportDeviceStateRequest): pb.ExportDeviceStateResponse => ({
      sections: exportSections(request.vm, request.destination ?? ""),
    }),

    importDeviceState: async (
      request: pb.ImportDeviceStateRequest,
    ): Promise<pb.ImportDeviceStateResponse> => ({
      devices: await importSections(request, request.requestId),
    }),

    resumeDevices: (request: pb.ResumeDevicesRequest): pb.ResumeDevicesResponse => {
      devices.resume(request.vm);
      return {};
    },

    releaseDevices: async (request: pb.ReleaseDevicesRequest): Promise<pb.ReleaseDevicesResponse> => {
      registry.requireVm(request.vm);
      await registry.delete(controllerName(request.vm));
      registry.seals.released(request.vm);
      return { devices: [controllerName(request.vm)] };
    },

    // No controller backend tracks its changes yet.
    ...withoutPreCopy(devices, "interrupt-controller"),
  } satisfies DeviceStateHandlers;
}
