import { isPowerOfTwo } from "./bits.js";
import { Errno, invalidArgument, notFound } from "./smmu-error.js";

/** iommu_cache_invalidate_info.cache bits (digest §1.3). */
export const CacheType = { IOTLB: 1 << 0, DEV_IOTLB: 1 << 1, PASID: 1 << 2 } as const;
/** iommu_cache_invalidate_info.granularity. */
export const InvalidateGranularity = { DOMAIN: 0, PASID: 1, ADDR: 2 } as const;
/** addr_info.flags. */
export const AddrInfoFlags = { PASID: 1 << 0, ARCHID: 1 << 1, LEAF: 1 << 2 } as const;
/** pasid_info.flags. */
export const PasidInfoFlags = { PASID: 1 << 0, ARCHID: 1 << 1 } as const;

export const CACHE_INVALIDATE_INFO_VERSION_1 = 1;

/** The seed's `struct iommu_cache_invalidate_info` (digest §1.3), one of the two unions filled. */
export interface CacheInvalidateInfo {
  version: number;
  cache: number;
  granularity: number;
  pasidInfo?: { flags: number; archid: number; pasid: number };
  addrInfo?: {
    flags: number;
    archid: number;
    pasid: number;
    addr: bigint;
    granuleSize: number;
    nbGranules: number;
  };
}

/** What an accepted request does to the caches. */
export type SeedInvalidation =
  | { kind: "asid"; asid: number }
  | { kind: "range"; asid: number; address: bigint; length: number; leaf: boolean }
  /** Every stage-1 entry of the domain's VMID. */
  | { kind: "vmid-stage1" }
  /** CFGI_CD for one PASID on every device of the domain. */
  | { kind: "cd"; ssid: number };

/**
 * Validates a seed CACHE_INVALIDATE request and says what it does, in two passes as the kernel
 * does them. First the iommu core (iommu_check_cache_invl_data, digest §1.3's valid-combination
 * table): version != 1, unknown cache bits, unknown granularity, PASID cache with ADDR, DEV_IOTLB
 * with DOMAIN, unknown flags → EINVAL. Then the SMMU driver (seed v13 + its PASID-cache patch):
 *  - IOTLB, PASID granularity: PASID flag → ENOENT, no ARCHID → EINVAL, else TLBI by ASID = archid;
 *  - IOTLB, ADDR granularity: PASID flag → ENOENT; no ARCHID falls through to the global stage-1
 *    invalidation (the driver's `break`); a granule size that is not a power of two → EINVAL;
 *    else a range invalidation of nb_granules * granule_size bytes for ASID = archid;
 *  - IOTLB, DOMAIN granularity: every stage-1 entry of the VMID;
 *  - PASID cache alone: PASID granularity needs the PASID flag (EINVAL) → CFGI_CD(pasid);
 *    other granularities → ENOENT;
 *  - anything else (DEV_IOTLB alone, or no cache bit) → ENOENT.
 */
export function planSeedInvalidation(info: CacheInvalidateInfo): SeedInvalidation {
  if (info.version !== CACHE_INVALIDATE_INFO_VERSION_1) {
    throw invalidArgument("BAD_VERSION", `version must be 1, got ${info.version}`, "version");
  }
  if ((info.cache & ~0b111) !== 0)
    throw invalidArgument("BAD_CACHE_TYPE", `unknown cache bits 0x${info.cache.toString(16)}`, "cache");
  const g = info.granularity;
  if (
    g !== InvalidateGranularity.DOMAIN &&
    g !== InvalidateGranularity.PASID &&
    g !== InvalidateGranularity.ADDR
  ) {
    throw invalidArgument("BAD_GRANULARITY", `granularity must be 0, 1 or 2, got ${g}`, "granularity");
  }
  const addr = info.addrInfo ?? { flags: 0, archid: 0, pasid: 0, addr: 0n, granuleSize: 0, nbGranules: 0 };
  const pasid = info.pasidInfo ?? { flags: 0, archid: 0, pasid: 0 };
  if (g === InvalidateGranularity.ADDR) {
    if (info.cache & CacheType.PASID)
      throw invalidArgument("BAD_COMBINATION", "PASID cache cannot be invalidated by address", "cache");
    if ((addr.flags & ~0b111) !== 0)
      throw invalidArgument("BAD_FLAGS", "unknown addr_info flags", "addrInfo.flags");
  } else if (g === InvalidateGranularity.PASID) {
    if ((pasid.flags & ~0b11) !== 0)
      throw invalidArgument("BAD_FLAGS", "unknown pasid_info flags", "pasidInfo.flags");
  } else if (info.cache & CacheType.DEV_IOTLB) {
    throw invalidArgument("BAD_COMBINATION", "the device IOTLB cannot be invalidated by domain", "cache");
  }

  if (info.cache & CacheType.IOTLB) {
    if (g === InvalidateGranularity.PASID) {
      if (pasid.flags & PasidInfoFlags.PASID)
        throw notFound(
          "PASID_TAGGED_IOTLB_UNSUPPORTED",
          "PASID-tagged IOTLB invalidation is not supported",
          "pasidInfo.flags",
        );
      if (!(pasid.flags & PasidInfoFlags.ARCHID))
        throw invalidArgument(
          "ARCHID_REQUIRED",
          "pasid_info needs the ARCHID flag (the ASID)",
          "pasidInfo.flags",
        );
      return { kind: "asid", asid: pasid.archid };
    }
    if (g === InvalidateGranularity.ADDR) {
      if (addr.flags & AddrInfoFlags.PASID)
        throw notFound(
          "PASID_TAGGED_IOTLB_UNSUPPORTED",
          "PASID-tagged IOTLB invalidation is not supported",
          "addrInfo.flags",
        );
      if (!(addr.flags & AddrInfoFlags.ARCHID)) return { kind: "vmid-stage1" };
      if (!isPowerOfTwo(addr.granuleSize)) {
        throw invalidArgument(
          "BAD_GRANULE_SIZE",
          `granule_size must be a power of two, got ${addr.granuleSize}`,
          "addrInfo.granuleSize",
        );
      }
      return {
        kind: "range",
        asid: addr.archid,
        address: BigInt.asUintN(64, addr.addr),
        length: addr.nbGranules * addr.granuleSize,
        leaf: (addr.flags & AddrInfoFlags.LEAF) !== 0,
      };
    }
    return { kind: "vmid-stage1" };
  }
  if (info.cache & CacheType.PASID) {
    if (g !== InvalidateGranularity.PASID)
      throw notFound(
        "UNSUPPORTED_INVALIDATION",
        "PASID cache invalidation needs PASID granularity",
        "granularity",
      );
    if (!(pasid.flags & PasidInfoFlags.PASID))
      throw invalidArgument("PASID_REQUIRED", "pasid_info needs the PASID flag", "pasidInfo.flags");
    return { kind: "cd", ssid: pasid.pasid };
  }
  throw notFound(
    "UNSUPPORTED_INVALIDATION",
    "device IOTLB invalidation is not supported",
    "cache",
    Errno.ENOENT,
  );
}
