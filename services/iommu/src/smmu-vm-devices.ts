import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import {
  VplaneError,
  badSection,
  devicesQuiesced,
  inSection,
  type ImportStream,
  type VmDevices,
} from "@vplane/service-kit";
import { guestMemorySpec } from "./guest-memory-binding.js";
import {
  SMMU_NAME,
  checkResourceId,
  smmuName,
  type ImportedSmmuItem,
  type SmmuRegistry,
} from "./smmu-registry.js";
import type { BackendKind } from "./smmu-backend.js";
import { SMMU_STATE_KIND, readSmmuState } from "./smmu-state-format.js";

/** Dirty pages are reported in 4 KiB pages (the guest-memory dirty-log granule). */
const DIRTY_PAGE_SIZE = 4096;

/** The backend the imported SMMUs use (ImportDeviceStateRequest.backend): unspecified is EMULATED. */
function importedBackend(backend: Backend): BackendKind {
  if (backend === Backend.BACKEND_UNSPECIFIED || backend === Backend.BACKEND_EMULATED) return "EMULATED";
  if (backend === Backend.BACKEND_NATIVE) return "NATIVE";
  throw new VplaneError({
    code: "INVALID_ARGUMENT",
    reason: "BACKEND_INVALID",
    message: `unknown backend ${backend}`,
    field: "backend",
  });
}

/**
 * Checks one section's envelope: kind "smmuv3", device "vms/{vm}/smmus/{smmu}" of this VM and
 * not repeated; the SMMU id it names. Its payload is the state format's to read (readSmmuState).
 */
function smmuIdOf(vm: string, index: number, section: pb.DeviceSection, seen: Set<string>): string {
  if (section.kind !== SMMU_STATE_KIND) {
    throw badSection(
      index,
      "UNKNOWN_DEVICE_KIND",
      `kind "${section.kind}" is not "${SMMU_STATE_KIND}"`,
      "kind",
    );
  }
  const match = SMMU_NAME.exec(section.device);
  if (!match || match[1] !== vm) {
    throw badSection(
      index,
      "SECTION_OF_ANOTHER_DEVICE",
      `device "${section.device}" is not an SMMU of VM ${vm} ("vms/${vm}/smmus/{smmu}")`,
      "device",
    );
  }
  if (seen.has(section.device)) {
    throw badSection(index, "SECTION_DUPLICATE", `${section.device} has another section before`, "device");
  }
  seen.add(section.device);
  return match[2]!;
}

/**
 * The SMMUs of a VM as service-kit's deviceStateHandlers drive them, keyed by VM id (a VM may
 * have several SMMUs: one section each): quiesce, export, import and resume are the backend's,
 * in the state format every backend shares (smmu-state-format.ts).
 */
export function smmuVmDevices(registry: SmmuRegistry, dataDir: string): VmDevices {
  /** The VM's SMMUs from their full sections, quiesced and durable. */
  const importSections = async (
    { vm, sections, guestMemory, backend: requested }: ImportStream,
    requestId: string,
  ): Promise<string[]> => {
    checkResourceId(vm, "vm");
    if (sections.length === 0) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "SECTIONS_MISSING",
        message: "ImportDeviceState needs one section per SMMU",
        field: "sections",
      });
    }
    const seen = new Set<string>();
    const read = sections.map((section, i) => ({
      smmuId: smmuIdOf(vm, i, section, seen),
      imported: inSection(i, () => readSmmuState(section.payload, section)),
    }));
    const backend = importedBackend(requested);
    const path = guestMemory?.path ?? "";
    const requestedBytes = guestMemory?.sizeBytes ?? 0n;
    const items = read.map(({ smmuId, imported }, i): ImportedSmmuItem => {
      const sizeBytes = requestedBytes === 0n ? BigInt(imported.guestMemoryBytes) : requestedBytes;
      const memory = guestMemorySpec(path, sizeBytes, dataDir, "guest_memory");
      if (memory.sizeBytes !== imported.guestMemoryBytes) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "GUEST_MEMORY_SIZE_MISMATCH",
          message: `sections[${i}] was exported with ${imported.guestMemoryBytes} bytes of guest RAM, not ${memory.sizeBytes}`,
          field: "guest_memory.size_bytes",
        });
      }
      return {
        section: i,
        imported,
        record: {
          vm,
          smmuId,
          backend,
          ...imported.spec,
          guestMemoryPath: path,
          guestMemoryBytes: memory.sizeBytes,
          createTime: new Date().toISOString(),
          createRequestId: requestId,
        },
      };
    });
    const entries = await registry.importSmmus(vm, requestId, items);
    return entries.map((e) => smmuName(e.record.vm, e.record.smmuId));
  };

  /** Stops every SMMU of the VM; the pages their DMA wrote (4 KiB, ascending). */
  const quiesce = (vm: string) => {
    const pages = new Set<bigint>();
    for (const e of registry.requireVm(vm)) {
      const q = e.backend.quiesce();
      for (const page of q.pages) {
        for (let at = 0; at < q.pageSize; at += DIRTY_PAGE_SIZE) pages.add(page + BigInt(at));
      }
    }
    const dirtyPages = [...pages].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { dirtyPages, pageSize: BigInt(DIRTY_PAGE_SIZE) };
  };

  const exportSections = (vm: string, destination: string): pb.DeviceSection[] => {
    const sections = registry.requireVm(vm).map((e) => {
      const { kind, formatVersion, payload } = e.backend.exportState();
      return {
        kind,
        device: smmuName(e.record.vm, e.record.smmuId),
        formatVersion,
        payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      };
    });
    // From here what a DMA would change has left with the state (issue 17 point 1).
    registry.seals.exported(vm, destination);
    return sections;
  };

  return {
    requireRunning: (vm) => {
      if (registry.requireVm(vm).some((e) => e.backend.quiesced))
        throw devicesQuiesced(vm, "SMMU_QUIESCED", "SMMUs are");
    },
    checkVmId: (vm) => checkResourceId(vm, "vm"),
    quiesce,
    exportSections,
    importSections,
    resume: (vm) => {
      for (const e of registry.requireVm(vm)) e.backend.resume();
      registry.seals.resumed(vm);
    },
    release: async (vm) => {
      const names = registry.requireVm(vm).map((e) => smmuName(e.record.vm, e.record.smmuId));
      for (const name of names) await registry.delete(name);
      registry.seals.released(vm);
      return names;
    },
    // No SMMU backend tracks its changes yet: no pre-copy capability.
  };
}
