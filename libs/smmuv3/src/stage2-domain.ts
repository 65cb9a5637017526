import { POW2, isPowerOfTwo } from "./bits.js";
import { Perm } from "./access-permission.js";
import { Errno, SmmuError, alreadyExists, invalidArgument, resourceExhausted } from "./smmu-error.js";
import type { KeyedChanges } from "@vplane/model-kit";
import { Stage2PageTable } from "./stage2-page-table.js";
import { stage2PageSizesBits, type GranuleBits } from "./translation-granule.js";

/** One host mapping of guest-physical [ipa, ipa + size) onto guest-RAM backing [hostAddress, ...). */
export interface Stage2Mapping {
  ipa: number;
  hostAddress: number;
  size: number;
  perm: Perm;
}

/** A guest MSI doorbell binding (seed BIND_MSI, digest §1.6). */
export interface MsiBinding {
  /** Guest IOVA of the doorbell page, aligned down to `size`. */
  giova: number;
  /** Guest-physical doorbell address, aligned down to `size`. */
  gpa: number;
  size: number;
}

export interface Stage2DomainOptions {
  vmid: number;
  granuleBits: GranuleBits;
  /** Input (IPA) size in bits. */
  ipaBits: number;
  /** Size of the guest-RAM backing: host addresses must fall inside it. */
  backingSize: number;
  /** Most mappings at once (VFIO's dma_entry_limit, default 65535). */
  maxMappings: number;
}

/**
 * The stage-2 domain the host owns (the VFIO type1 / iommufd NEST_PARENT role, digest §1 and
 * §2.1): map and unmap guest-physical ranges with permissions, with VFIO type1 v2's validation,
 * onto the real stage-2 table that the SMMU walks.
 *
 * "Host address" here is an offset in the guest-RAM backing (the role of VFIO's vaddr): the
 * emulated SMMU's stage-2 output is where the data lives in the shared RAM file.
 */
export class Stage2Domain {
  readonly vmid: number;
  readonly table: Stage2PageTable;
  readonly granuleBits: GranuleBits;
  readonly ipaBits: number;
  private readonly backingSize: number;
  private readonly maxMappings: number;
  /** Sorted by ipa, non-overlapping. */
  private readonly ranges: Stage2Mapping[] = [];
  private msi: MsiBinding | undefined;

  constructor(options: Stage2DomainOptions) {
    this.vmid = options.vmid;
    this.granuleBits = options.granuleBits;
    this.ipaBits = options.ipaBits;
    this.backingSize = options.backingSize;
    this.maxMappings = options.maxMappings;
    this.table = new Stage2PageTable(options.granuleBits, options.ipaBits);
  }

  get mappings(): readonly Stage2Mapping[] {
    return this.ranges;
  }

  /** The mapping that starts at `ipa`, if any. */
  mappingAt(ipa: number): Stage2Mapping | undefined {
    const m = this.ranges[this.insertionPoint(ipa)];
    return m?.ipa === ipa ? m : undefined;
  }

  get msiBinding(): MsiBinding | undefined {
    return this.msi;
  }

  /**
   * VFIO_IOMMU_MAP_DMA (type1 v2): no permission, zero size, or an address or size not aligned
   * to the smallest page → EINVAL; a range that wraps or leaves the IPA aperture → EINVAL; any
   * overlap with an existing mapping → EEXIST; the mapping limit → ENOSPC; a host range outside
   * the backing → EFAULT (pinning fails). Nothing changes on refusal.
   */
  map(ipa: number, hostAddress: number, size: number, perm: Perm): void {
    this.checkMapping(ipa, hostAddress, size, perm);
    const at = this.insertionPoint(ipa);
    const before = this.ranges[at - 1];
    const after = this.ranges[at];
    if ((before && before.ipa + before.size > ipa) || (after && after.ipa < ipa + size))
      throw overlaps(ipa, size, "ipa");
    if (this.ranges.length >= this.maxMappings) throw tooMany(this.maxMappings);
    this.insert(at, { ipa, hostAddress, size, perm });
  }

  /** MAP_DMA's checks of one mapping on its own (see map), without the overlap and the limit. */
  private checkMapping(ipa: number, hostAddress: number, size: number, perm: Perm): void {
    const granule = POW2[this.granuleBits]!;
    if ((perm & Perm.READ_WRITE) === 0 || perm !== (perm & Perm.READ_WRITE)) {
      throw invalidArgument("NO_PERMISSION", "a stage-2 mapping needs read, write or both", "perm");
    }
    checkAligned(ipa, granule, "ipa");
    checkAligned(hostAddress, granule, "hostAddress");
    checkAligned(size, granule, "size");
    if (size === 0) throw invalidArgument("ZERO_SIZE", "size must be non-zero", "size");
    if (ipa + size > POW2[this.ipaBits]!) {
      throw invalidArgument(
        "IPA_OUT_OF_RANGE",
        `[0x${ipa.toString(16)}, +0x${size.toString(16)}) leaves the ${this.ipaBits}-bit IPA space`,
        "ipa",
      );
    }
    if (hostAddress + size > this.backingSize) {
      throw invalidArgument(
        "HOST_RANGE_NOT_BACKED",
        `host range [0x${hostAddress.toString(16)}, +0x${size.toString(16)}) is outside the 0x${this.backingSize.toString(16)}-byte guest RAM backing`,
        "hostAddress",
        Errno.EFAULT,
      );
    }
  }

  /**
   * Checks a stop delta's mappings against this domain (issue 14: the destination applies it in
   * place): each removed IPA is where a mapping starts (STATE_DELTA_MISMATCH otherwise, as
   * mergeKeyed), and each changed mapping passes MAP_DMA's checks against the mappings the
   * changes leave (the model's own errors, `field` naming `changed[i].<field>` or
   * `removed[i]`). Both lists ascend (the delta's decoder checked). Changes nothing.
   */
  checkChanges({ changed, removed }: KeyedChanges<Stage2Mapping>, mismatch: MismatchError): void {
    const gone = new Set(removed);
    removed.forEach((ipa, i) => {
      if (this.mappingAt(ipa) === undefined)
        throw mismatch(`removed[${i}]`, `no mapping starts at IPA 0x${ipa.toString(16)}`);
    });
    const replaced = new Set(changed.map((m) => m.ipa));
    const kept = (m: Stage2Mapping) => !gone.has(m.ipa) && !replaced.has(m.ipa);
    let count = this.ranges.length - removed.length;
    changed.forEach((m, i) => {
      const field = (name: string) => `changed[${i}].${name}`;
      if (gone.has(m.ipa))
        throw mismatch(field("ipa"), `IPA 0x${m.ipa.toString(16)} is both changed and removed`);
      try {
        this.checkMapping(m.ipa, m.hostAddress, m.size, m.perm);
      } catch (error) {
        if (error instanceof SmmuError && error.field) throw withField(error, field(error.field));
        throw error;
      }
      const previous = changed[i - 1];
      let at = this.insertionPoint(m.ipa);
      const below = this.ranges[at - 1];
      if (
        (previous && previous.ipa + previous.size > m.ipa) ||
        (below && kept(below) && below.ipa + below.size > m.ipa)
      )
        throw overlaps(m.ipa, m.size, field("ipa"));
      for (; at < this.ranges.length && this.ranges[at]!.ipa < m.ipa + m.size; at++)
        if (kept(this.ranges[at]!)) throw overlaps(m.ipa, m.size, field("ipa"));
      if (this.mappingAt(m.ipa) === undefined) count++;
    });
    if (count > this.maxMappings) throw tooMany(this.maxMappings);
  }

  /** Applies changes checkChanges accepted: the removed mappings go, each changed one replaces the mapping at its IPA. */
  applyChanges({ changed, removed }: KeyedChanges<Stage2Mapping>): void {
    for (const ipa of removed) this.remove(this.mappingAt(ipa)!);
    for (const m of changed) {
      const old = this.mappingAt(m.ipa);
      if (old) this.remove(old);
      this.insert(this.insertionPoint(m.ipa), { ...m });
    }
  }

  private insert(at: number, m: Stage2Mapping): void {
    this.forEachPiece(m.ipa, m.hostAddress, m.size, (pieceIpa, pieceHost, bits) =>
      this.table.installLeaf(pieceIpa, pieceHost, bits, m.perm),
    );
    this.ranges.splice(at, 0, m);
  }

  private remove(m: Stage2Mapping): void {
    this.forEachPiece(m.ipa, m.hostAddress, m.size, (pieceIpa, _host, bits) =>
      this.table.removeLeaf(pieceIpa, bits),
    );
    this.ranges.splice(this.insertionPoint(m.ipa), 1);
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA (type1 v2): unaligned or zero size → EINVAL; a range that cuts a
   * mapping in two at either end → EINVAL; otherwise every mapping inside is removed and the
   * number of bytes unmapped is returned (0 when nothing was mapped there).
   */
  unmap(ipa: number, size: number): { bytes: number; removed: Stage2Mapping[] } {
    const granule = POW2[this.granuleBits]!;
    checkAligned(ipa, granule, "ipa");
    checkAligned(size, granule, "size");
    if (size === 0) throw invalidArgument("ZERO_SIZE", "size must be non-zero", "size");
    const end = ipa + size;
    const first = this.ranges.find((m) => m.ipa < ipa && m.ipa + m.size > ipa);
    if (first) throw invalidArgument("UNMAP_BISECTS_MAPPING", "the range starts inside a mapping", "ipa");
    const last = this.ranges.find((m) => m.ipa < end && m.ipa + m.size > end);
    if (last) throw invalidArgument("UNMAP_BISECTS_MAPPING", "the range ends inside a mapping", "size");
    const removed = this.ranges.filter((m) => m.ipa >= ipa && m.ipa + m.size <= end);
    for (const m of removed) this.remove(m);
    return { bytes: removed.reduce((n, m) => n + m.size, 0), removed };
  }

  /**
   * Seed BIND_MSI (iommu_dma_bind_guest_msi, digest §1.6): size must be a power of two no larger
   * than the stage-2 granule (EINVAL); addresses are aligned down to it. The digest's rule is one
   * binding per domain: the same giova again is accepted and changes nothing (as the code's
   * "already registered" path), another giova while one is bound is refused with EBUSY.
   */
  bindMsi(giova: number, gpa: number, size: number): MsiBinding {
    const binding = this.msiBindingOf(giova, gpa, size);
    if (this.msi) {
      if (this.msi.giova === binding.giova) return this.msi;
      throw new SmmuError({
        code: "FAILED_PRECONDITION",
        reason: "MSI_ALREADY_BOUND",
        message: `doorbell IOVA 0x${this.msi.giova.toString(16)} is already bound; one binding per domain`,
        errno: Errno.EBUSY,
      });
    }
    this.msi = binding;
    return binding;
  }

  /** BIND_MSI's checks of a binding on its own (see bindMsi): the binding, aligned down. */
  msiBindingOf(giova: number, gpa: number, size: number): MsiBinding {
    if (!isPowerOfTwo(size) || size > POW2[this.granuleBits]!) {
      throw invalidArgument(
        "BAD_MSI_GRANULE",
        `size must be a power of two up to the stage-2 granule, got ${size}`,
        "size",
      );
    }
    const binding = { giova: giova - (giova % size), gpa: gpa - (gpa % size), size };
    if (binding.gpa + size > POW2[this.ipaBits]!) {
      throw invalidArgument("IPA_OUT_OF_RANGE", "the doorbell lies outside the IPA space", "gpa");
    }
    return binding;
  }

  /** Sets the binding msiBindingOf checked, in place of any other (a stop delta's, applied in place). */
  replaceMsi(binding: MsiBinding | undefined): void {
    this.msi = binding && { ...binding };
  }

  /** Seed UNBIND_MSI: returns the binding removed, if giova was bound (the kernel call returns nothing). */
  unbindMsi(giova: number): MsiBinding | undefined {
    const m = this.msi;
    if (!m || giova - (giova % m.size) !== m.giova) return undefined;
    this.msi = undefined;
    return m;
  }

  /** Whether the IPA falls in the bound doorbell page. */
  isDoorbell(ipa: number): boolean {
    const m = this.msi;
    return m !== undefined && ipa >= m.gpa && ipa < m.gpa + m.size;
  }

  /** Whether [ipa, ipa + 2^bits) overlaps the doorbell page (such entries are never cached). */
  overlapsDoorbell(ipa: number, bits: number): boolean {
    const m = this.msi;
    return m !== undefined && ipa < m.gpa + m.size && m.gpa < ipa + POW2[bits]!;
  }

  /** io-pgtable's split of a range into the largest pages both addresses are aligned to. */
  private forEachPiece(
    ipa: number,
    host: number,
    size: number,
    each: (ipa: number, host: number, bits: number) => void,
  ): void {
    const sizes = stage2PageSizesBits(this.granuleBits);
    let done = 0;
    while (done < size) {
      const a = ipa + done;
      const h = host + done;
      const bits = sizes.find((b) => a % POW2[b]! === 0 && h % POW2[b]! === 0 && size - done >= POW2[b]!)!;
      each(a, h, bits);
      done += POW2[bits]!;
    }
  }

  private insertionPoint(ipa: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ranges[mid]!.ipa < ipa) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A stop delta's mismatch with the state it applies to (STATE_DELTA_MISMATCH, named by the caller's format). */
export type MismatchError = (field: string, message: string) => Error;

function overlaps(ipa: number, size: number, field: string): SmmuError {
  return alreadyExists(
    "MAPPING_OVERLAPS",
    `[0x${ipa.toString(16)}, +0x${size.toString(16)}) overlaps a mapping`,
    field,
  );
}

function tooMany(max: number): SmmuError {
  return resourceExhausted("TOO_MANY_MAPPINGS", `the domain already holds ${max} mappings`);
}

/** The same refusal, naming `field`. */
function withField(error: SmmuError, field: string): SmmuError {
  return new SmmuError({
    code: error.code,
    reason: error.reason,
    message: error.message,
    field,
    ...(error.errno !== undefined ? { errno: error.errno } : {}),
  });
}

function checkAligned(value: number, granule: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value % granule !== 0) {
    throw invalidArgument(
      "NOT_ALIGNED",
      `${field} must be a non-negative multiple of 0x${granule.toString(16)}, got ${value}`,
      field,
    );
  }
}
