import { readSync, writeSync } from "node:fs";
import { KernelError } from "./errno.js";
import { ioctl } from "./ioctl.js";
import {
  IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
  IoasMapFlag,
  IommufdLayouts as L,
  hostIommufdIoctls,
  type IommufdIoctls,
} from "./iommufd-uapi.js";
import type { NativeBuffer } from "./native-memory.js";
import { withNativeBuffer } from "./native-memory.js";

const ioctls = hostIommufdIoctls;

/** Runs one iommufd ioctl on a struct whose first u32 is its size (iommufd's extensible form). */
function call<T>(
  fd: number,
  name: keyof IommufdIoctls,
  size: number,
  fill: (b: NativeBuffer) => void,
  read: (b: NativeBuffer) => T,
): T {
  return withNativeBuffer(size, (b) => {
    b.setU32(0, size);
    fill(b);
    ioctl(fd, ioctls()[name], b);
    return read(b);
  });
}

/** IOMMU_IOAS_ALLOC: a new I/O address space; its object id. */
export function ioasAlloc(fd: number): number {
  return call(
    fd,
    "IOMMU_IOAS_ALLOC",
    L.iommu_ioas_alloc.size,
    () => {},
    (b) => b.u32(L.iommu_ioas_alloc.out_ioas_id),
  );
}

/** IOMMU_IOAS_MAP at a fixed IOVA of `length` bytes of this process's memory at `userVa`. */
export function ioasMap(
  fd: number,
  ioasId: number,
  mapping: {
    userVa: bigint | number;
    length: bigint | number;
    iova: bigint | number;
    read: boolean;
    write: boolean;
  },
): void {
  const m = L.iommu_ioas_map;
  const flags =
    IoasMapFlag.IOMMU_IOAS_MAP_FIXED_IOVA |
    (mapping.read ? IoasMapFlag.IOMMU_IOAS_MAP_READABLE : 0) |
    (mapping.write ? IoasMapFlag.IOMMU_IOAS_MAP_WRITEABLE : 0);
  call(
    fd,
    "IOMMU_IOAS_MAP",
    m.size,
    (b) =>
      b
        .setU32(m.flags, flags)
        .setU32(m.ioas_id, ioasId)
        .setU64(m.user_va, mapping.userVa)
        .setU64(m.length, mapping.length)
        .setU64(m.iova, mapping.iova),
    () => undefined,
  );
}

/** IOMMU_IOAS_UNMAP of [iova, iova + length): how many bytes it unmapped. */
export function ioasUnmap(
  fd: number,
  ioasId: number,
  iova: bigint | number,
  length: bigint | number,
): bigint {
  const u = L.iommu_ioas_unmap;
  return call(
    fd,
    "IOMMU_IOAS_UNMAP",
    u.size,
    (b) => b.setU32(u.ioas_id, ioasId).setU64(u.iova, iova).setU64(u.length, length),
    (b) => b.u64(u.length),
  );
}

/** IOMMU_HWPT_ALLOC: a page table for `devId` on `ptId` (an IOAS, or a vIOMMU for nested data). */
export function hwptAlloc(
  fd: number,
  request: {
    devId: number;
    ptId: number;
    flags: number;
    dataType?: number;
    data?: Uint8Array;
    faultId?: number;
  },
): number {
  const h = L.iommu_hwpt_alloc;
  const data = request.data ?? new Uint8Array(0);
  return withNativeBuffer(Math.max(data.length, 1), (payload) => {
    payload.bytes.set(data);
    return call(
      fd,
      "IOMMU_HWPT_ALLOC",
      h.size,
      (b) => {
        b.setU32(h.flags, request.flags).setU32(h.dev_id, request.devId).setU32(h.pt_id, request.ptId);
        b.setU32(h.data_type, request.dataType ?? 0).setU32(h.data_len, data.length);
        if (data.length > 0) b.setU64(h.data_uptr, payload.address);
        b.setU32(h.fault_id, request.faultId ?? 0);
      },
      (b) => b.u32(h.out_hwpt_id),
    );
  });
}

/** What IOMMU_GET_HW_INFO reports for a device's IOMMU (the SMMUv3 registers when type 2). */
export interface HwInfo {
  type: number;
  maxPasidLog2: number;
  capabilities: bigint;
  /** IOMMU_HW_INFO_TYPE_ARM_SMMUV3's payload: IDR0..IDR5, IIDR, AIDR as the hardware has them. */
  smmuv3: { flags: number; idr: number[]; iidr: number; aidr: number } | undefined;
}

export function getHwInfo(fd: number, devId: number): HwInfo {
  const i = L.iommu_hw_info;
  const s = L.iommu_hw_info_arm_smmuv3;
  return withNativeBuffer(s.size, (data) =>
    call(
      fd,
      "IOMMU_GET_HW_INFO",
      i.size,
      (b) => b.setU32(i.dev_id, devId).setU32(i.data_len, s.size).setU64(i.data_uptr, data.address),
      (b): HwInfo => {
        const type = b.u32(i.out_data_type);
        return {
          type,
          maxPasidLog2: b.bytes[i.out_max_pasid_log2]!,
          capabilities: b.u64(i.out_capabilities),
          smmuv3:
            type === 2
              ? {
                  flags: data.u32(s.flags),
                  idr: Array.from({ length: 6 }, (_, n) => data.u32(s.idr + 4 * n)),
                  iidr: data.u32(s.iidr),
                  aidr: data.u32(s.aidr),
                }
              : undefined,
        };
      },
    ),
  );
}

/** IOMMU_VIOMMU_ALLOC of `type` for `devId`'s IOMMU over the nest-parent HWPT `hwptId`. */
export function viommuAlloc(fd: number, request: { type: number; devId: number; hwptId: number }): number {
  const v = L.iommu_viommu_alloc;
  return call(
    fd,
    "IOMMU_VIOMMU_ALLOC",
    v.size,
    (b) => b.setU32(v.type, request.type).setU32(v.dev_id, request.devId).setU32(v.hwpt_id, request.hwptId),
    (b) => b.u32(v.out_viommu_id),
  );
}

/** IOMMU_VDEVICE_ALLOC: `devId` as the guest sees it on the vIOMMU (virt_id: the vSID on SMMUv3). */
export function vdeviceAlloc(
  fd: number,
  request: { viommuId: number; devId: number; virtId: bigint | number },
): number {
  const v = L.iommu_vdevice_alloc;
  return call(
    fd,
    "IOMMU_VDEVICE_ALLOC",
    v.size,
    (b) =>
      b
        .setU32(v.viommu_id, request.viommuId)
        .setU32(v.dev_id, request.devId)
        .setU64(v.virt_id, request.virtId),
    (b) => b.u32(v.out_vdevice_id),
  );
}

/** How an IOMMU_HWPT_INVALIDATE batch ended: entries the kernel handled, and its error if any. */
export interface InvalidateResult {
  handled: number;
  error?: KernelError;
}

/**
 * IOMMU_HWPT_INVALIDATE on `hwptId` (a vIOMMU for SMMUv3 commands): `entries` of `entryLen`
 * bytes each, back to back. entry_num goes in as the count and comes out as the number handled,
 * also when the kernel refuses an entry (then the error names its errno).
 */
export function hwptInvalidate(
  fd: number,
  request: { hwptId: number; dataType: number; entryLen: number; entries: Uint8Array },
): InvalidateResult {
  const v = L.iommu_hwpt_invalidate;
  const count = request.entries.length / request.entryLen;
  return withNativeBuffer(Math.max(request.entries.length, 1), (data) => {
    data.bytes.set(request.entries);
    return withNativeBuffer(v.size, (b) => {
      b.setU32(0, v.size).setU32(v.hwpt_id, request.hwptId).setU64(v.data_uptr, data.address);
      b.setU32(v.data_type, request.dataType)
        .setU32(v.entry_len, request.entryLen)
        .setU32(v.entry_num, count);
      try {
        ioctl(fd, ioctls().IOMMU_HWPT_INVALIDATE, b);
        return { handled: b.u32(v.entry_num) };
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
        return { handled: b.u32(v.entry_num), error };
      }
    });
  });
}

/** IOMMU_VEVENTQ_ALLOC: the queue's object id and the fd its records are read from. */
export function veventqAlloc(
  fd: number,
  request: { viommuId: number; type: number; depth: number },
): { id: number; fd: number } {
  const q = L.iommu_veventq_alloc;
  return call(
    fd,
    "IOMMU_VEVENTQ_ALLOC",
    q.size,
    (b) =>
      b
        .setU32(q.viommu_id, request.viommuId)
        .setU32(q.type, request.type)
        .setU32(q.veventq_depth, request.depth),
    (b) => ({ id: b.u32(q.out_veventq_id), fd: b.u32(q.out_veventq_fd) }),
  );
}

/** IOMMU_FAULT_QUEUE_ALLOC: the queue's object id and the fd page faults are read from. */
export function faultQueueAlloc(fd: number): { id: number; fd: number } {
  const f = L.iommu_fault_alloc;
  return call(
    fd,
    "IOMMU_FAULT_QUEUE_ALLOC",
    f.size,
    () => {},
    (b) => ({ id: b.u32(f.out_fault_id), fd: b.u32(f.out_fault_fd) }),
  );
}

/** IOMMU_DESTROY of any iommufd object. */
export function iommufdDestroy(fd: number, id: number): void {
  call(
    fd,
    "IOMMU_DESTROY",
    L.iommu_destroy.size,
    (b) => b.setU32(L.iommu_destroy.id, id),
    () => undefined,
  );
}

/** One vEVENTQ record: an event's payload, or the marker that events were lost before `sequence`. */
export type VEvent = { sequence: number; lost: true } | { sequence: number; lost: false; data: Uint8Array };

/**
 * Reads what the vEVENTQ holds (a read never blocks: it returns 0 bytes when empty). Each record
 * is a header {flags, sequence} then, unless it is a LOST_EVENTS marker, `payloadBytes` of
 * payload (32 for SMMUv3: the raw event record with the vSID the kernel wrote into it).
 */
export function readVEvents(veventqFd: number, payloadBytes: number, maxRecords = 64): VEvent[] {
  const h = L.iommufd_vevent_header;
  const buffer = Buffer.alloc(maxRecords * (h.size + payloadBytes));
  const length = readFd(veventqFd, buffer, "read vEVENTQ");
  const out: VEvent[] = [];
  for (let at = 0; at + h.size <= length;) {
    const flags = buffer.readUInt32LE(at + h.flags);
    const sequence = buffer.readUInt32LE(at + h.sequence);
    at += h.size;
    if (flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS) {
      out.push({ sequence, lost: true });
      continue;
    }
    out.push({ sequence, lost: false, data: new Uint8Array(buffer.subarray(at, at + payloadBytes)) });
    at += payloadBytes;
  }
  return out;
}

/** One iommu_hwpt_pgfault record of the fault queue. */
export interface PageFault {
  flags: number;
  devId: number;
  pasid: number;
  groupId: number;
  perm: number;
  address: bigint;
  length: number;
  cookie: number;
}

/** Reads the fault queue's pending page faults (never blocks; whole groups only). */
export function readPageFaults(faultFd: number, maxRecords = 64): PageFault[] {
  const p = L.iommu_hwpt_pgfault;
  const buffer = Buffer.alloc(maxRecords * p.size);
  const length = readFd(faultFd, buffer, "read fault queue");
  const out: PageFault[] = [];
  for (let at = 0; at + p.size <= length; at += p.size) {
    out.push({
      flags: buffer.readUInt32LE(at + p.flags),
      devId: buffer.readUInt32LE(at + p.dev_id),
      pasid: buffer.readUInt32LE(at + p.pasid),
      groupId: buffer.readUInt32LE(at + p.grpid),
      perm: buffer.readUInt32LE(at + p.perm),
      address: buffer.readBigUInt64LE(at + p.addr),
      length: buffer.readUInt32LE(at + p.length),
      cookie: buffer.readUInt32LE(at + p.cookie),
    });
  }
  return out;
}

/** Answers a page-fault group (iommu_hwpt_page_response) by its cookie. */
export function respondPageFault(faultFd: number, cookie: number, code: number): void {
  const r = L.iommu_hwpt_page_response;
  const record = Buffer.alloc(r.size);
  record.writeUInt32LE(cookie, r.cookie);
  record.writeUInt32LE(code, r.code);
  try {
    writeSync(faultFd, record);
  } catch (error) {
    throw asKernelError("write fault queue", error);
  }
}

function readFd(fd: number, buffer: Buffer, call: string): number {
  try {
    return readSync(fd, buffer, 0, buffer.length, null);
  } catch (error) {
    throw asKernelError(call, error);
  }
}

/** Node's fs errors carry the errno negated in `errno`. */
function asKernelError(call: string, error: unknown): KernelError {
  const errno = (error as { errno?: unknown }).errno;
  if (typeof errno === "number") return new KernelError(call, Math.abs(errno));
  throw error;
}
