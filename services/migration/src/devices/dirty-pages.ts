// The guest pages the devices wrote, as the device services report them at the stop: ascending
// runs of pages, each service with its own page size (XIVE queue pages, SMMU DMA pages).
import type { PageRange } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";

/** A run of guest-physical bytes [address, address + bytes). */
export interface DirtyRange {
  address: bigint;
  bytes: bigint;
}

/** Guest pages the devices wrote at quiesce: addresses (ascending) and the page size in bytes. */
export interface DirtyPages {
  pages: bigint[];
  pageSize: bigint;
}

/** One service's page runs as byte ranges. */
export function rangesOf(runs: readonly PageRange[], pageSize: bigint): DirtyRange[] {
  return runs.map((run) => ({ address: run.address, bytes: run.count * pageSize }));
}

/** Byte ranges of several services as one ascending list with overlapping or touching runs merged. */
export function mergeRanges(lists: readonly (readonly DirtyRange[])[]): DirtyRange[] {
  const all = lists.flat().sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const out: DirtyRange[] = [];
  for (const range of all) {
    const last = out[out.length - 1];
    if (last && range.address <= last.address + last.bytes) {
      const end = range.address + range.bytes;
      if (end > last.address + last.bytes) last.bytes = end - last.address;
    } else out.push({ ...range });
  }
  return out;
}

/** The page addresses of `ranges` at `pageSize` (the largest page size a service reported). */
export function pagesOf(ranges: readonly DirtyRange[], pageSize: bigint): DirtyPages {
  const pages: bigint[] = [];
  if (pageSize <= 0n) return { pages, pageSize };
  for (const { address, bytes } of ranges) {
    const end = address + bytes;
    for (let page = address - (address % pageSize); page < end; page += pageSize) {
      if (pages[pages.length - 1] !== page) pages.push(page);
    }
  }
  return { pages, pageSize };
}
