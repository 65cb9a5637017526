import { EventId, type SmmuEvent } from "./event-record.js";

/**
 * The seed series' unrecoverable fault report (`struct iommu_fault`, type DMA_UNRECOV; digest
 * §1.4), derived from an SMMU event the way the later revision of the series maps them.
 */
export const FaultReason = {
  UNKNOWN: 0,
  PASID_FETCH: 1,
  BAD_PASID_ENTRY: 2,
  PASID_INVALID: 3,
  WALK_EABT: 4,
  PTE_FETCH: 5,
  PERMISSION: 6,
  ACCESS: 7,
  OOR_ADDRESS: 8,
} as const;
export type FaultReason = (typeof FaultReason)[keyof typeof FaultReason];

/** iommu_fault_unrecoverable.flags (v5 era and later; the pre-v5 PERM_VALID bit is not used). */
export const FaultFlags = { PASID_VALID: 1 << 0, ADDR_VALID: 1 << 1, FETCH_ADDR_VALID: 1 << 2 } as const;

/** iommu_fault perm bits, v8 and later (digest §1.4: READ 1, WRITE 2, EXEC 4, PRIV 8). */
export const FaultPerm = { READ: 1, WRITE: 2, EXEC: 4, PRIV: 8 } as const;

export interface UnrecoverableFault {
  reason: FaultReason;
  flags: number;
  pasid: number;
  perm: number;
  addr: bigint;
  fetchAddr: bigint;
}

const ADDRESS_FAULTS: ReadonlyMap<number, FaultReason> = new Map<number, FaultReason>([
  [EventId.F_TRANSLATION, FaultReason.PTE_FETCH],
  [EventId.F_ADDR_SIZE, FaultReason.OOR_ADDRESS],
  [EventId.F_ACCESS, FaultReason.ACCESS],
  [EventId.F_PERMISSION, FaultReason.PERMISSION],
]);

/**
 * Digest §1.4 "SMMU event → reason": 0x10–0x13 set ADDR_VALID; 0x08 PASID_INVALID; 0x09
 * PASID_FETCH with FETCH_ADDR_VALID; 0x0a BAD_PASID_ENTRY; 0x0b WALK_EABT with both address
 * flags. Any other event is not reported (undefined).
 */
export function unrecoverableFaultFromEvent(e: SmmuEvent): UnrecoverableFault | undefined {
  let reason: FaultReason | undefined = ADDRESS_FAULTS.get(e.id);
  let flags = 0;
  if (reason !== undefined) flags = FaultFlags.ADDR_VALID;
  else if (e.id === EventId.C_BAD_SUBSTREAMID) reason = FaultReason.PASID_INVALID;
  else if (e.id === EventId.F_CD_FETCH) {
    reason = FaultReason.PASID_FETCH;
    flags = FaultFlags.FETCH_ADDR_VALID;
  } else if (e.id === EventId.C_BAD_CD) reason = FaultReason.BAD_PASID_ENTRY;
  else if (e.id === EventId.F_WALK_EABT) {
    reason = FaultReason.WALK_EABT;
    flags = FaultFlags.ADDR_VALID | FaultFlags.FETCH_ADDR_VALID;
  } else return undefined;
  if (e.substreamId !== undefined) flags |= FaultFlags.PASID_VALID;
  let perm = 0;
  if (e.read !== undefined) perm |= e.read ? FaultPerm.READ : FaultPerm.WRITE;
  if (e.instruction) perm |= FaultPerm.EXEC;
  if (e.privileged) perm |= FaultPerm.PRIV;
  return {
    reason,
    flags,
    pasid: e.substreamId ?? 0,
    perm,
    addr: e.inputAddress ?? 0n,
    fetchAddr: BigInt(e.fetchAddress ?? 0),
  };
}
