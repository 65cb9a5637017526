import { POW2 } from "./bits.js";
import { Perm } from "./access-permission.js";
import { EventId } from "./event-record.js";
import type { Stage2PageTable } from "./stage2-page-table.js";
import { levelShift } from "./translation-granule.js";

/** What a stage-2 walk found; reused between walks so the walk allocates nothing. */
export class Stage2WalkResult {
  /** 0 on success, else the event number of the fault (F_TRANSLATION, F_ACCESS, F_ADDR_SIZE). */
  fault = 0;
  /** Output address of the mapping's first byte (aligned to 2^sizeBits). */
  outBase = 0;
  /** Input (IPA) of the mapping's first byte. */
  ipaBase = 0;
  sizeBits = 0;
  level = 0;
  perm: Perm = 0;
}

/**
 * Walks the host stage-2 table for `ipa` (digest §4.2 "Stage 2"): IPA beyond the input size is a
 * translation fault; an invalid descriptor or a reserved level-3 type is a translation fault; AF
 * clear is an access fault (never, since the host sets AF); an output beyond `outputBits` is an
 * address-size fault. Permission is left to the caller, which knows the access.
 */
export function walkStage2(
  table: Stage2PageTable,
  ipa: number,
  outputBits: number,
  out: Stage2WalkResult,
): void {
  const g = table.granuleBits;
  out.fault = 0;
  if (ipa >= POW2[table.ipaBits]!) {
    out.fault = EventId.F_TRANSLATION;
    out.level = table.startLevel;
    return;
  }
  let entries = table.table(table.root);
  for (let level = table.startLevel; level <= 3; level++) {
    const i = table.indexAt(ipa, level) * 2;
    const lo = entries[i]!;
    const hi = entries[i + 1]!;
    out.level = level;
    if ((lo & 1) === 0) {
      out.fault = EventId.F_TRANSLATION;
      return;
    }
    if (level < 3 && (lo & 2) !== 0) {
      entries = table.table(table.tableIndexOf(lo, hi));
      continue;
    }
    if (level === 3 && (lo & 2) === 0) {
      out.fault = EventId.F_TRANSLATION;
      return;
    }
    const shift = levelShift(g, level);
    const low = lo >>> 0;
    const address = (hi & 0xffff) * 0x1_0000_0000 + (shift >= 32 ? 0 : low - (low % POW2[shift]!));
    if ((lo & (1 << 10)) === 0) {
      out.fault = EventId.F_ACCESS;
      return;
    }
    if (address >= POW2[outputBits]!) {
      out.fault = EventId.F_ADDR_SIZE;
      return;
    }
    out.outBase = address;
    out.ipaBase = ipa - (ipa % POW2[shift]!);
    out.sizeBits = shift;
    out.perm = ((lo >>> 6) & 1 ? Perm.READ : 0) | ((lo >>> 7) & 1 ? Perm.WRITE : 0);
    return;
  }
}
