import type { InvalidateRequest, InvalidateResponse } from "@vplane/proto/gen/vplane/iommu/v1/invalidation";
import type {
  AttachDeviceRequest,
  AttachDeviceResponse,
  AttachPasidTableRequest,
  AttachPasidTableResponse,
  BindMsiRequest,
  BindMsiResponse,
  DetachDeviceRequest,
  DetachDeviceResponse,
  DetachPasidTableRequest,
  DetachPasidTableResponse,
  MapStage2Request,
  MapStage2Response,
  UnbindMsiRequest,
  UnbindMsiResponse,
  UnmapStage2Request,
  UnmapStage2Response,
} from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { VplaneError, missingField, requiredField } from "@vplane/service-kit";
import type { TransactionOp } from "@vplane/store";
import { safeNumber } from "./proto-mapping.js";
import type { InvalidationItem } from "./smmu-backend.js";
import {
  configKeys,
  deleteOp,
  putOp,
  type DeviceRecord,
  type MsiRecord,
  type PasidTableRecord,
} from "./smmu-config-store.js";
import { pasidConfigOf, type SmmuEntry, type SmmuRegistry } from "./smmu-registry.js";
import { LIMITS } from "./service-limits.js";

/**
 * The configuration calls: stage-2 map/unmap, devices, the guest's stage-1 config in both forms,
 * MSI binding, invalidation. Each is applied to the backend, then made durable with its answer
 * (SmmuRegistry.mutate).
 */
export function smmuConfigHandlers(registry: SmmuRegistry) {
  const keyOf = (e: SmmuEntry) => ({ vm: e.record.vm, id: e.record.smmuId });
  /** The write of the device's durable record as it now stands (or its removal). */
  const deviceWrite = (e: SmmuEntry, streamId: number): TransactionOp => {
    const { vm, id } = keyOf(e);
    const d = e.devices.get(streamId);
    return d ? putOp(configKeys.device(vm, id, streamId), d) : deleteOp(configKeys.device(vm, id, streamId));
  };

  return {
    mapStage2: (request: MapStage2Request): Promise<MapStage2Response> => {
      const e = registry.require(request.name);
      const m = requiredField(request.mapping, "mapping");
      const ipa = safeNumber(m.ipa, "mapping.ipa");
      const host = safeNumber(m.hostAddress, "mapping.host_address");
      const size = safeNumber(m.size, "mapping.size");
      const { vm, id } = keyOf(e);
      return registry.mutate(e, request, "MapStage2", () => {
        e.backend.mapStage2(ipa, host, size, m.permission);
        const record = { ipa, hostAddress: host, size, perm: m.permission };
        return {
          answer: {},
          writes: [putOp(configKeys.mapping(vm, id, ipa), record)],
          // The range was unmapped (a mapping over another is EEXIST): unmapping it is the inverse.
          undo: () => e.backend.unmapStage2(ipa, size),
        };
      });
    },

    unmapStage2: (request: UnmapStage2Request): Promise<UnmapStage2Response> => {
      const e = registry.require(request.name);
      const ipa = safeNumber(request.ipa, "ipa");
      const size = safeNumber(request.size, "size");
      const { vm, id } = keyOf(e);
      return registry.mutate(e, request, "UnmapStage2", () => {
        const before = [...e.backend.mappings()];
        const bytes = e.backend.unmapStage2(ipa, size);
        const left = new Set(e.backend.mappings().map((m) => m.ipa));
        const removed = before.filter((m) => !left.has(m.ipa));
        return {
          answer: { unmappedBytes: BigInt(bytes) },
          writes: removed.map((m) => deleteOp(configKeys.mapping(vm, id, m.ipa))),
          // Whole mappings go (VFIO UNMAP_DMA rules): mapping them again is the inverse.
          undo: () => {
            for (const m of removed) e.backend.mapStage2(m.ipa, m.hostAddress, m.size, m.perm);
          },
        };
      });
    },

    attachDevice: (request: AttachDeviceRequest): Promise<AttachDeviceResponse> => {
      const e = registry.require(request.name);
      return registry.mutate(e, request, "AttachDevice", () => {
        const d = e.backend.attachDevice(request.streamId, request.virtualStreamId, request.pageRequests);
        e.devices.set(request.streamId, {
          streamId: request.streamId,
          virtualStreamId: request.virtualStreamId,
          pageRequests: request.pageRequests,
        });
        return {
          answer: {
            device: {
              streamId: d.streamId,
              virtualStreamId: d.virtualStreamId,
              pageRequests: d.pageRequests,
              guestSte: undefined,
            },
          },
          writes: [deviceWrite(e, request.streamId)],
          // The StreamID was unbound (a bound one is EEXIST), so it has no page request yet.
          undo: () => {
            e.backend.detachDevice(request.streamId);
            e.devices.delete(request.streamId);
          },
        };
      });
    },

    detachDevice: (request: DetachDeviceRequest): Promise<DetachDeviceResponse> => {
      const e = registry.require(request.name);
      return registry.mutate(e, request, "DetachDevice", () => {
        const was = e.devices.get(request.streamId);
        const answered = e.backend.detachDevice(request.streamId);
        e.devices.delete(request.streamId);
        return {
          answer: { pageRequestsAnswered: answered },
          writes: [deviceWrite(e, request.streamId)],
          // Bound again as it was, its guest STE too (the page requests answered stay answered).
          undo: () => {
            if (!was) return;
            e.backend.attachDevice(was.streamId, was.virtualStreamId, was.pageRequests);
            e.devices.set(request.streamId, was);
            if (was.guestSte) setGuestSte(e, was.streamId, was.guestSte);
          },
        };
      });
    },

    attachPasidTable: (request: AttachPasidTableRequest): Promise<AttachPasidTableResponse> => {
      const e = registry.require(request.name);
      const form = request.form;
      const { vm, id } = keyOf(e);
      if (form?.$case === "seed") {
        const s = form.value;
        const record: PasidTableRecord = {
          version: s.version,
          format: s.format,
          basePtr: s.basePtr.toString(),
          pasidBits: s.pasidBits,
          config: s.config,
          smmuv3: { version: s.smmuv3Version, s1fmt: s.s1fmt, s1dss: s.s1dss },
        };
        return registry.mutate(e, request, "AttachPasidTable", () => {
          const replaced = e.pasidTable;
          e.backend.attachPasidTable({ ...record, basePtr: s.basePtr });
          e.pasidTable = record;
          return {
            answer: { storedSte0: 0n, storedSte1: 0n },
            writes: [putOp(configKeys.pasidTable(vm, id), record)],
            undo: () => setPasidTable(e, replaced),
          };
        });
      }
      if (form?.$case === "guestSte") {
        const g = form.value;
        return registry.mutate(e, request, "AttachPasidTable", () => {
          const replaced = e.devices.get(g.streamId)?.guestSte;
          const [storedSte0, storedSte1] = e.backend.setGuestSte(g.streamId, [g.ste0, g.ste1], g.flags).words;
          const d = e.devices.get(g.streamId)!;
          d.guestSte = { ste0: g.ste0.toString(), ste1: g.ste1.toString(), flags: g.flags };
          return {
            answer: { storedSte0, storedSte1 },
            writes: [deviceWrite(e, g.streamId)],
            undo: () => setGuestSte(e, g.streamId, replaced),
          };
        });
      }
      throw missingField("form", "one of seed or guest_ste");
    },

    detachPasidTable: (request: DetachPasidTableRequest): Promise<DetachPasidTableResponse> => {
      const e = registry.require(request.name);
      const { vm, id } = keyOf(e);
      const sid = request.streamId;
      return registry.mutate(e, request, "DetachPasidTable", () => {
        if (sid === undefined) {
          const replaced = e.pasidTable;
          e.backend.detachPasidTable();
          delete e.pasidTable;
          return {
            answer: {},
            writes: [deleteOp(configKeys.pasidTable(vm, id))],
            undo: () => setPasidTable(e, replaced),
          };
        }
        const replaced = e.devices.get(sid)?.guestSte;
        e.backend.clearGuestSte(sid);
        const d = e.devices.get(sid);
        if (d) delete d.guestSte;
        return { answer: {}, writes: [deviceWrite(e, sid)], undo: () => setGuestSte(e, sid, replaced) };
      });
    },

    invalidate: (request: InvalidateRequest): Promise<InvalidateResponse> => {
      const e = registry.require(request.name);
      if (request.entries.length > LIMITS.maxInvalidateBatch) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "BATCH_TOO_LARGE",
          message: `at most ${LIMITS.maxInvalidateBatch} entries per Invalidate`,
          field: "entries",
        });
      }
      const items: InvalidationItem[] = request.entries.map((entry, i) => {
        const x = entry.entry;
        if (x?.$case === "raw") return { raw: [x.value.cmd0, x.value.cmd1] as const };
        if (x?.$case === "structured") {
          const s = x.value;
          const pasid = safeNumber(s.pasid, `entries[${i}].structured.pasid`);
          return {
            structured: {
              version: s.version,
              cache: s.cache,
              granularity: s.granularity,
              pasidInfo: { flags: s.flags, archid: s.archid, pasid },
              addrInfo: {
                flags: s.flags,
                archid: s.archid,
                pasid,
                addr: s.addr,
                granuleSize: safeNumber(s.granuleSize, `entries[${i}].structured.granule_size`),
                nbGranules: safeNumber(s.nbGranules, `entries[${i}].structured.nb_granules`),
              },
            },
          };
        }
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "ENTRY_EMPTY",
          message: `entries[${i}] has neither raw nor structured`,
          field: `entries[${i}]`,
          batchIndex: i,
        });
      });
      // Invalidations change caches only: nothing to make durable (the answer is kept in memory).
      return registry.mutate<InvalidateResponse>(e, request, "Invalidate", () => {
        const outcome = e.backend.invalidate(items);
        return outcome.error ? { error: outcome.error } : { answer: { handled: outcome.handled } };
      });
    },

    bindMsi: (request: BindMsiRequest): Promise<BindMsiResponse> => {
      const e = registry.require(request.name);
      const b = requiredField(request.binding, "binding");
      const { vm, id } = keyOf(e);
      return registry.mutate(e, request, "BindMsi", () => {
        const replaced = e.msi;
        const m = e.backend.bindMsi(
          safeNumber(b.iova, "binding.iova"),
          safeNumber(b.gpa, "binding.gpa"),
          safeNumber(b.size, "binding.size"),
        );
        e.msi = { iova: m.giova, gpa: m.gpa, size: m.size };
        return {
          answer: { binding: { iova: BigInt(m.giova), gpa: BigInt(m.gpa), size: BigInt(m.size) } },
          writes: [putOp(configKeys.msi(vm, id), e.msi)],
          undo: () => setMsi(e, replaced),
        };
      });
    },

    unbindMsi: (request: UnbindMsiRequest): Promise<UnbindMsiResponse> => {
      const e = registry.require(request.name);
      const { vm, id } = keyOf(e);
      return registry.mutate<UnbindMsiResponse>(e, request, "UnbindMsi", () => {
        const replaced = e.msi;
        const unbound = e.backend.unbindMsi(safeNumber(request.iova, "iova"));
        if (!unbound) return { answer: { unbound }, writes: [] };
        delete e.msi;
        return {
          answer: { unbound },
          writes: [deleteOp(configKeys.msi(vm, id))],
          undo: () => setMsi(e, replaced),
        };
      });
    },
  };
}

/*
 * The undos of the calls that set the guest's stage 1 or the MSI binding (RequestLedger: when the
 * call's store write fails): each sets back, in the backend and in the entry's durable records,
 * what the call replaced (`undefined`: none), which is what the store still holds.
 */

/**
 * The seed PASID table. Attaching what a call replaced is always accepted: S1 → S1 is the only
 * refused transition, and a call that replaced a translate config left abort, bypass or none.
 */
function setPasidTable(e: SmmuEntry, record: PasidTableRecord | undefined): void {
  if (record) e.backend.attachPasidTable(pasidConfigOf(record));
  else e.backend.detachPasidTable();
  e.pasidTable = record;
}

/**
 * A device's guest STE. The page requests a FAULT_ID_VALID STE turned on stay on, as after a
 * DetachPasidTable.
 */
function setGuestSte(e: SmmuEntry, streamId: number, ste: DeviceRecord["guestSte"]): void {
  if (ste) e.backend.setGuestSte(streamId, [BigInt(ste.ste0), BigInt(ste.ste1)], ste.flags);
  else e.backend.clearGuestSte(streamId);
  const d = e.devices.get(streamId);
  if (d && ste) d.guestSte = ste;
  else if (d) delete d.guestSte;
}

/** The MSI binding (one per SMMU; binding the bound IOVA again changes nothing). */
function setMsi(e: SmmuEntry, record: MsiRecord | undefined): void {
  const bound = e.msi;
  if (bound && bound.iova !== record?.iova) e.backend.unbindMsi(bound.iova);
  if (record && bound?.iova !== record.iova) e.backend.bindMsi(record.iova, record.gpa, record.size);
  e.msi = record;
}
