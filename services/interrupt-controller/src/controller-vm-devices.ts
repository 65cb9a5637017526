import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import {
  VplaneError,
  backendKindOf,
  badSection,
  deviceSection,
  devicesQuiesced,
  importedGuestMemory,
  inSection,
  type ImportStream,
  type PreCopyDevices,
  type VmDevices,
} from "@vplane/service-kit";
import type { ControllerRecord } from "./controller-config-store.js";
import { checkVmId, controllerName, type ControllerRegistry } from "./controller-registry.js";
import {
  STATE_KIND_OF_MODE,
  readControllerDelta,
  readControllerState,
  readFirstControllerDelta,
  type PreCopySection,
  type ExportedState,
  type ImportedControllerState,
} from "./controller-state-format.js";
import { checkGuestMemory } from "./guest-memory-binding.js";

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
 * The interrupt controllers of a VM as service-kit's deviceStateHandlers drive them, keyed by VM
 * id: quiesce, export, import and resume are the backend's, in the state format every backend
 * shares (controller-state-format.ts, xive.md §6). Pre-copy (issue 14): a backend that tracks its
 * changes (the emulated one) sends deltas; the destination prepares them as they come
 * (ControllerRegistry.prepareImport) and applies the stop's at the finish.
 */
export function controllerVmDevices(registry: ControllerRegistry, dataDir: string): VmDevices {
  /** The record of an imported controller on this host: its backend and guest RAM here. */
  const recordOf = (
    { vm, guestMemory, backend }: ImportStream,
    imported: ImportedControllerState,
    requestId: string,
  ): ControllerRecord => {
    const kind = backendKindOf(backend, "backend");
    const memory = importedGuestMemory(guestMemory, imported.guestMemoryBytes, (path, size) =>
      checkGuestMemory(path, size, dataDir, "guest_memory"),
    );
    return {
      vm,
      ...imported.spec,
      // Either backend imports either backend's state (one format): a VM moves between a host
      // with the KVM XIVE device and one without. NATIVE on a host without it: the probe's reason.
      backend: kind,
      guestMemoryPath: guestMemory?.path ?? "",
      guestMemoryBytes: memory.sizeBytes,
      createTime: new Date().toISOString(),
      createRequestId: requestId,
      // A restart replays the guest's CAS choice before the rest (SelectMode).
      ...(imported.selectedMode ? { selectedMode: imported.selectedMode } : {}),
    };
  };

  /** A controller from its one full section, quiesced and durable. */
  const importSections = async (stream: ImportStream, requestId: string): Promise<string[]> => {
    checkVmId(stream.vm, "vm");
    const section = controllerSection(stream.vm, stream.sections);
    const imported = inSection(0, () => readControllerState(section.payload, section));
    await registry.importController(recordOf(stream, imported, requestId), imported);
    return [controllerName(stream.vm)];
  };

  /** The delta of a pre-copy stream's one section (none: nothing changed). */
  const deltaOf = ({ vm, sections }: ImportStream) => {
    if (sections.length === 0) return undefined;
    const section = controllerSection(vm, sections);
    return {
      delta: inSection(0, () => readControllerDelta(section.payload, section)),
      payload: section.payload,
    };
  };

  const quiesce = (vm: string) => {
    const { pages, pageSize } = registry.requireVm(vm).backend.quiesce();
    return { dirtyPages: pages, pageSize: BigInt(pageSize) };
  };

  /** The state as a section of the VM's controller. */
  const section = (vm: string, state: ExportedState) => deviceSection(controllerName(vm), state);

  const exportSections = (vm: string, destination: string): pb.DeviceSection[] => {
    const state = registry.requireVm(vm).backend.exportState();
    // From here what a trigger would change has left with the state (issue 17 point 1).
    registry.seals.exported(vm, destination);
    return [section(vm, state)];
  };

  const preCopy: PreCopyDevices = {
    read: (vm, iteration) => {
      const changes = registry.requireVm(vm).backend.preCopy?.read(iteration === 0);
      return changes ? [section(vm, changes)] : [];
    },
    info: (vm) => {
      const pending = registry.requireVm(vm).backend.preCopy?.pendingBytes() ?? { initial: 0, dirty: 0 };
      return { initialBytes: BigInt(pending.initial), dirtyBytes: BigInt(pending.dirty) };
    },
    stop: (vm, destination) => {
      const tracker = registry.requireVm(vm).backend.preCopy;
      if (!tracker?.tracking()) return undefined;
      const changes = tracker.read(false);
      registry.seals.exported(vm, destination);
      return changes ? [section(vm, changes)] : [];
    },
    prepare: async (stream, iteration) => {
      checkVmId(stream.vm, "vm");
      const section = controllerSection(stream.vm, stream.sections); // service-kit passes only streams with sections
      const read: PreCopySection = {
        payload: section.payload,
        delta: () => inSection(0, () => readControllerDelta(section.payload, section)),
        first: () => inSection(0, () => readFirstControllerDelta(section.payload, section)),
      };
      await registry.prepareImport(stream.vm, iteration, read, (imported) => recordOf(stream, imported, ""));
      return [controllerName(stream.vm)];
    },
    prepared: (vm) => registry.hasPrepared(vm),
    finish: (stream) => ({
      devices: [controllerName(stream.vm)],
      write: registry.finishImport(stream.vm, deltaOf(stream)),
    }),
    sync: () => registry.sync(),
  };

  return {
    requireRunning: (vm) => {
      if (registry.requireVm(vm).backend.quiesced)
        throw devicesQuiesced(vm, "CONTROLLER_QUIESCED", "controller is");
    },
    checkVmId: (vm) => checkVmId(vm, "vm"),
    quiesce,
    exportSections,
    importSections,
    resume: (vm) => {
      registry.requireVm(vm).backend.resume();
      registry.seals.resumed(vm);
    },
    release: async (vm) => {
      checkVmId(vm, "vm");
      if (await registry.discardPrepared(vm)) return [controllerName(vm)];
      registry.requireVm(vm);
      await registry.delete(controllerName(vm));
      registry.seals.released(vm);
      return [controllerName(vm)];
    },
    preCopy,
  };
}
