import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { VplaneError, badSection, decodeSection } from "@vplane/service-kit";
import { DEFAULT_LIMITS, SMMU_STATE_FORMAT_VERSION, decodeSmmuState, type SmmuState } from "@vplane/smmuv3";
import { guestMemorySpec } from "./guest-memory-binding.js";
import { LIMITS } from "./service-limits.js";
import {
  SMMU_NAME,
  checkResourceId,
  smmuName,
  type ImportedSmmuItem,
  type SmmuRegistry,
} from "./smmu-registry.js";

/** Section kind of an SMMUv3 (proto/vplane/devicestate/v1). */
const SECTION_KIND = "smmuv3";
/** Dirty pages are reported in 4 KiB pages (the guest-memory dirty-log granule). */
const DIRTY_PAGE_SIZE = 4096;

/** A decoded section: the SMMU id it names and its checked state. */
interface CheckedSection {
  smmuId: string;
  state: SmmuState;
}

/**
 * Checks one section: kind "smmuv3", device "vms/{vm}/smmus/{smmu}" of this VM and not repeated,
 * a known format version, a payload libs/smmuv3 decodes in full, and guest-visible limits this
 * service can keep (the durable record holds queue depth and timeout; the page-request capacity
 * is the model's default). Any failure names sections[i].
 */
function checkedSection(
  vm: string,
  index: number,
  section: pb.DeviceSection,
  seen: Set<string>,
): CheckedSection {
  if (section.kind !== SECTION_KIND) {
    throw badSection(index, "UNKNOWN_DEVICE_KIND", `kind "${section.kind}" is not "${SECTION_KIND}"`, "kind");
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
  const state = decodeSection(section, index, SMMU_STATE_FORMAT_VERSION, decodeSmmuState);
  const unsupported = (field: string, message: string) =>
    badSection(index, "STATE_LIMITS_UNSUPPORTED", message, `payload.${field}`);
  if (state.eventQueueDepth > LIMITS.maxEventQueueDepth)
    throw unsupported("event_queue_depth", `event queue depth above ${LIMITS.maxEventQueueDepth}`);
  if (state.pageRequestTimeoutMs > LIMITS.maxPageRequestTimeoutMs)
    throw unsupported(
      "page_request_timeout_ms",
      `page-request timeout above ${LIMITS.maxPageRequestTimeoutMs} ms`,
    );
  if (state.pageRequestCapacity !== DEFAULT_LIMITS.pageRequests)
    throw unsupported(
      "page_request_capacity",
      `this service keeps ${DEFAULT_LIMITS.pageRequests} page requests`,
    );
  return { smmuId: match[2]!, state };
}

/**
 * vplane.devicestate.v1.DeviceStateService for the SMMUs, keyed by VM id (a VM may have several
 * SMMUs: one section each): the handlers find the VM's SMMUs and translate; quiesce, export,
 * import and resume are the model's (libs/smmuv3, issue 6).
 */
export function deviceStateHandlers(registry: SmmuRegistry, dataDir: string) {
  return {
    /** Stops every SMMU of the VM; the pages their DMA wrote (4 KiB, ascending). */
    quiesceDevices: (request: pb.QuiesceDevicesRequest): pb.QuiesceDevicesResponse => {
      const pages = new Set<bigint>();
      for (const e of registry.requireVm(request.vm)) {
        const q = e.backend.quiesce();
        for (const page of q.pages) {
          for (let at = 0; at < q.pageSize; at += DIRTY_PAGE_SIZE) pages.add(page + BigInt(at));
        }
      }
      const dirtyPages = [...pages].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return { dirtyPages, pageSize: BigInt(DIRTY_PAGE_SIZE) };
    },

    exportDeviceState: (request: pb.ExportDeviceStateRequest): pb.ExportDeviceStateResponse => ({
      sections: registry.requireVm(request.vm).map((e) => {
        const payload = e.backend.exportState();
        return {
          kind: SECTION_KIND,
          device: smmuName(e.record.vm, e.record.smmuId),
          formatVersion: SMMU_STATE_FORMAT_VERSION,
          payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        };
      }),
    }),

    importDeviceState: async (
      request: pb.ImportDeviceStateRequest,
    ): Promise<pb.ImportDeviceStateResponse> => {
      checkResourceId(request.vm, "vm");
      if (request.sections.length === 0) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "SECTIONS_MISSING",
          message: "ImportDeviceState needs one section per SMMU",
          field: "sections",
        });
      }
      const seen = new Set<string>();
      const sections = request.sections.map((s, i) => checkedSection(request.vm, i, s, seen));
      const path = request.guestMemory?.path ?? "";
      const requested = request.guestMemory?.sizeBytes ?? 0n;
      const items = sections.map(({ smmuId, state }, i): ImportedSmmuItem => {
        const sizeBytes = requested === 0n ? BigInt(state.guestMemoryBytes) : requested;
        const memory = guestMemorySpec(path, sizeBytes, dataDir, "guest_memory");
        if (memory.sizeBytes !== state.guestMemoryBytes) {
          throw new VplaneError({
            code: "INVALID_ARGUMENT",
            reason: "GUEST_MEMORY_SIZE_MISMATCH",
            message: `sections[${i}] was exported with ${state.guestMemoryBytes} bytes of guest RAM, not ${memory.sizeBytes}`,
            field: "guest_memory.size_bytes",
          });
        }
        return {
          field: `sections[${i}].payload`,
          state,
          record: {
            vm: request.vm,
            smmuId,
            backend: "EMULATED",
            features: state.features,
            guestMemoryPath: path,
            guestMemoryBytes: memory.sizeBytes,
            stage2GranuleBits: state.stage2GranuleBits,
            eventQueueDepth: state.eventQueueDepth,
            pageRequestTimeoutMs: state.pageRequestTimeoutMs,
            createTime: new Date().toISOString(),
            createRequestId: request.requestId,
          },
        };
      });
      const entries = await registry.importSmmus(request.vm, request.requestId, items);
      return { devices: entries.map((e) => smmuName(e.record.vm, e.record.smmuId)) };
    },

    resumeDevices: (request: pb.ResumeDevicesRequest): pb.ResumeDevicesResponse => {
      for (const e of registry.requireVm(request.vm)) e.backend.resume();
      return {};
    },

    releaseDevices: async (request: pb.ReleaseDevicesRequest): Promise<pb.ReleaseDevicesResponse> => {
      const names = registry.requireVm(request.vm).map((e) => smmuName(e.record.vm, e.record.smmuId));
      for (const name of names) await registry.delete(name);
      return { devices: names };
    },
  };
}
