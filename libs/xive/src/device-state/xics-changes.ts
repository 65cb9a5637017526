import { addKeyedChange, type KeyedChanges } from "@vplane/model-kit";
import type { Icp } from "../xics/icp.js";
import type { Ics } from "../xics/ics.js";
import type { IcpRecord, IcsSourceRecord } from "./controller-state.js";
import { sameBytes } from "./same-bytes.js";
import { icpRecord, icsSourceRecord, type IcsArrays } from "./xics-state.js";

/** ICS sources compared at once (their records are rebuilt only in a range that differs). */
const SOURCES_PER_RANGE = 1024;

export interface XicsChanges {
  sources: KeyedChanges<IcsSourceRecord>;
  icps: KeyedChanges<IcpRecord>;
}

/** A reset ICS's arrays (every source unclaimed, no server, priorities 0xff): the state holds none of them. */
function resetArrays(count: number): IcsArrays {
  return {
    flags: new Uint8Array(count),
    server: new Uint32Array(count),
    priority: new Uint8Array(count).fill(0xff),
    savedPriority: new Uint8Array(count).fill(0xff),
    status: new Uint8Array(count),
  };
}

const ARRAYS = ["flags", "server", "priority", "savedPriority", "status"] as const;

function sameRange(a: IcsArrays, b: IcsArrays, start: number, end: number): boolean {
  return ARRAYS.every((name) => sameBytes(a[name].subarray(start, end), b[name].subarray(start, end)));
}

/**
 * What changed in a XICS controller since the copy it keeps of what it last handed out (issue
 * 14 pre-copy), without capturing it: the ICS's arrays are compared with their copy in ranges
 * of 1,024 sources (memcmp), and records are built only in a range that differs; each ICP's
 * three registers are compared with the record last handed out, and a record is built only for
 * one that differs. A new tracker's copy is a reset ICS (whose sources the state leaves out) and
 * no ICP, so its first read holds everything. The deltas merge to the export byte for byte.
 */
export class XicsChangeTracker {
  private ics: IcsArrays | undefined;
  /** By server. */
  private readonly icps: (IcpRecord | undefined)[] = [];

  /** What changed since the copy; with `take`, the copy becomes the controller as it is now. */
  changes(ics: Ics, icps: readonly (Icp | undefined)[], take: boolean): XicsChanges {
    return { sources: this.sourceChanges(ics, take), icps: this.icpChanges(icps, take) };
  }

  private sourceChanges(ics: Ics, take: boolean): KeyedChanges<IcsSourceRecord> {
    const changes: KeyedChanges<IcsSourceRecord> = { changed: [], removed: [] };
    const copy = this.ics ?? resetArrays(ics.count);
    for (let start = 0; start < ics.count; start += SOURCES_PER_RANGE) {
      const end = Math.min(start + SOURCES_PER_RANGE, ics.count);
      if (sameRange(copy, ics, start, end)) continue;
      for (let srcno = start; srcno < end; srcno++) {
        const before = icsSourceRecord(copy, ics.offset, srcno);
        addKeyedChange(changes, ics.offset + srcno, before, icsSourceRecord(ics, ics.offset, srcno));
      }
      if (take) for (const name of ARRAYS) copy[name].set(ics[name].subarray(start, end), start);
    }
    if (take) this.ics = copy;
    return changes;
  }

  /** `icps` by server; a vCPU is never disconnected, so no ICP goes away. */
  private icpChanges(icps: readonly (Icp | undefined)[], take: boolean): KeyedChanges<IcpRecord> {
    const changes: KeyedChanges<IcpRecord> = { changed: [], removed: [] };
    for (let server = 0; server < icps.length; server++) {
      const icp = icps[server];
      if (icp === undefined) continue;
      const before = this.icps[server];
      if (
        before !== undefined &&
        before.xirr === icp.xirr &&
        before.pendingPriority === icp.pendingPriority &&
        before.mfrr === icp.mfrr
      )
        continue;
      const now = icpRecord(icp);
      changes.changed.push(now);
      if (take) this.icps[server] = now;
    }
    return changes;
  }
}
