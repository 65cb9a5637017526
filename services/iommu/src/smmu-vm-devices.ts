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
import { guestMemorySpec } from "./guest-memory-binding.js";
import type { SmmuRecord } from "./smmu-config-store.js";
import {
  SMMU_NAME,
  checkResourceId,
  smmuName,
  type ImportedSmmuItem,
  type SmmuDeltaItem,
  type SmmuEntry,
  type SmmuRegistry,
} from "./smmu-registry.js";
import type { BackendKind } from "./smmu-backend.js";
import {
  SMMU_STATE_KIND,
  readSmmuDelta,
  readSmmuState,
  type ExportedSmmuState,
  type ImportedSmmuState,
} from "./smmu-state-format.js";

/** Dirty pages are reported in 4 KiB pages (the guest-memory dirty-log granule). */
const DIRTY_PAGE_SIZE = 4096;

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
  /** The record of an SMMU imported here: its backend and guest RAM on this host. */
  const recordOf = (
    { vm, guestMemory, backend: requested }: ImportStream,
    smmuId: string,
    imported: ImportedSmmuState,
    requestId: string,
    section: number,
  ): Omit<SmmuRecord, "vmid"> => {
    const backend: BackendKind = backendKindOf(requested, "backend");
    const memory = importedGuestMemory(
      guestMemory,
      imported.guestMemoryBytes,
      (path, size) => guestMemorySpec(path, size, dataDir, "guest_memory"),
      `sections[${section}]`,
    );
    return {
      vm,
      smmuId,
      backend,
      ...imported.spec,
      guestMemoryPath: guestMemory?.path ?? "",
      guestMemoryBytes: memory.sizeBytes,
      createTime: new Date().toISOString(),
      createRequestId: requestId,
    };
  };

  /** The VM's SMMUs from their full sections, quiesced and durable. */
  const importSections = async (stream: ImportStream, requestId: string): Promise<string[]> => {
    const { vm, sections } = stream;
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
    const items = read.map(({ smmuId, imported }, i): ImportedSmmuItem => ({
      section: i,
      imported,
      record: recordOf(stream, smmuId, imported, requestId, i),
    }));
    const entries = await registry.importSmmus(vm, requestId, items);
    return entries.map((e) => smmuName(e.record.vm, e.record.smmuId));
  };

  /** The deltas of a pre-copy stream's sections, one per SMMU that changed. */
  const deltasOf = ({ vm, sections }: ImportStream): SmmuDeltaItem[] => {
    const seen = new Set<string>();
    return sections.map((section, i) => ({
      smmuId: smmuIdOf(vm, i, section, seen),
      delta: inSection(i, () => readSmmuDelta(section.payload, section)),
      section: i,
    }));
  };

  /** A state of SMMU `e` as its section. */
  const sectionOf = (e: SmmuEntry, state: ExportedSmmuState) =>
    deviceSection(smmuName(e.record.vm, e.record.smmuId), state);

  /** The VM's SMMUs when every one tracks its changes; none (no pre-copy) otherwise. */
  const tracking = (vm: string): SmmuEntry[] => {
    const entries = registry.requireVm(vm);
    return entries.every((e) => e.backend.preCopy) ? entries : [];
  };

  /** Pre-copy (issue 14): deltas out of every SMMU of the VM, prepared imports in. */
  const preCopy: PreCopyDevices = {
    read: (vm, iteration) =>
      tracking(vm).flatMap((e) => {
        const changes = e.backend.preCopy!.read(iteration === 0);
        return changes ? [sectionOf(e, changes)] : [];
      }),
    info: (vm) => {
      let initial = 0;
      let dirty = 0;
      for (const e of tracking(vm)) {
        const pending = e.backend.preCopy!.pendingBytes();
        initial += pending.initial;
        dirty += pending.dirty;
      }
      return { initialBytes: BigInt(initial), dirtyBytes: BigInt(dirty) };
    },
    stop: (vm, destination) => {
      const entries = tracking(vm);
      if (entries.length === 0 || !entries.every((e) => e.backend.preCopy!.tracking())) return undefined;
      const sections = entries.flatMap((e) => {
        const changes = e.backend.preCopy!.read(false);
        return changes ? [sectionOf(e, changes)] : [];
      });
      registry.seals.exported(vm, destination);
      return sections;
    },
    prepare: (stream, iteration) => {
      checkResourceId(stream.vm, "vm");
      return registry.prepareImport(stream.vm, iteration, deltasOf(stream), (smmuId, imported) =>
        recordOf(stream, smmuId, imported, "", 0),
      );
    },
    prepared: (vm) => registry.hasPrepared(vm),
    finish: (stream) => {
      const { entries, write } = registry.finishImport(stream.vm, deltasOf(stream));
      return { devices: entries.map((e) => smmuName(e.record.vm, e.record.smmuId)), write };
    },
    sync: () => registry.sync(),
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
    const sections = registry.requireVm(vm).map((e) => sectionOf(e, e.backend.exportState()));
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
      checkResourceId(vm, "vm");
      const discarded = await registry.discardPrepared(vm);
      if (discarded.length > 0) return discarded;
      const names = registry.requireVm(vm).map((e) => smmuName(e.record.vm, e.record.smmuId));
      for (const name of names) await registry.delete(name);
      registry.seals.released(vm);
      return names;
    },
    preCopy,
  };
}
