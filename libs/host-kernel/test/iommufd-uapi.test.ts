// iommufd's and the VFIO cdev's numbers and layouts, checked against the uapi headers of the
// kernel the Arm tier builds (linux-source-7.3, `make headers_install`): Debian's 6.1 cross
// headers predate vIOMMU, vDEVICE, vEVENTQ and the fault queue.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  HwptAllocFlag,
  IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
  IoasMapFlag,
  IommufdLayouts,
  IommufdType,
  IommuPageFault,
  VFIO_REGION_INFO_SIZE_FIELD,
  VfioRegionFlag,
  iommufdIoctls,
} from "../src/index.js";
import {
  asBig,
  headersSkipReason,
  layoutExpressions,
  layoutValues,
  readHeaderValues,
} from "./uapi-headers.js";

/** The tier's headers (kernel-tier/arm64/prepare.sh writes their folder into its manifest). */
function tierHeaders(): { dir: string } | { missing: string } {
  const cache = process.env.VPLANE_KERNEL_TIER_CACHE ?? join(homedir(), ".cache", "vplane-kernel-tier");
  const manifest = join(cache, "arm64-tier.json");
  const dir = existsSync(manifest)
    ? (JSON.parse(readFileSync(manifest, "utf8")) as { headers: string }).headers
    : "";
  if (dir && existsSync(join(dir, "linux", "iommufd.h"))) return { dir };
  return {
    missing: `the Arm tier's 7.3 uapi headers are not prepared (${manifest}): run kernel-tier/arm64/prepare.sh`,
  };
}

const headers = tierHeaders();
const skip =
  headersSkipReason("arm64") ??
  ("missing" in headers
    ? process.env.CI === "true"
      ? (() => {
          throw new Error(`${headers.missing}; CI=true, so this is a failure`);
        })()
      : headers.missing
    : undefined);
if (skip) process.stderr.write(`\n*** SKIPPING iommufd uapi checks: ${skip} ***\n\n`);

describe("iommufd and VFIO cdev uapi match the 7.3 headers the Arm tier builds", { skip }, () => {
  const dirs = "dir" in headers ? [headers.dir] : [];
  const read = <K extends string>(expressions: Record<K, string>) =>
    readHeaderValues("arm64", ["linux/iommufd.h", "linux/vfio.h"], expressions, dirs);
  const layouts = IommufdLayouts as unknown as Record<string, Record<string, number>>;

  it("every iommufd and VFIO ioctl number is the header's", () => {
    const ours = iommufdIoctls("arm64");
    const names = Object.keys(ours) as (keyof typeof ours)[];
    const values = read(Object.fromEntries(names.map((n) => [n, n])));
    for (const name of names) assert.equal(BigInt(ours[name].number), values[name], name);
  });

  it("flags, data types, page-fault and region constants are the header's", () => {
    const named = { ...HwptAllocFlag, ...IoasMapFlag, ...IommufdType, ...IommuPageFault, ...VfioRegionFlag };
    const values = read({
      ...Object.fromEntries(Object.keys(named).map((n) => [n, n])),
      IOMMU_VEVENTQ_FLAG_LOST_EVENTS: "IOMMU_VEVENTQ_FLAG_LOST_EVENTS",
      VFIO_REGION_INFO_SIZE_FIELD: "offsetof(struct vfio_region_info, size)",
    });
    assert.deepEqual(values, {
      ...asBig(named),
      IOMMU_VEVENTQ_FLAG_LOST_EVENTS: BigInt(IOMMU_VEVENTQ_FLAG_LOST_EVENTS),
      VFIO_REGION_INFO_SIZE_FIELD: BigInt(VFIO_REGION_INFO_SIZE_FIELD),
    });
  });

  it("every struct's size and field offsets are the header's", () => {
    const structs = Object.keys(layouts);
    const values = read(
      Object.assign({}, ...structs.map((s) => layoutExpressions(s, layouts[s]!))) as Record<string, string>,
    );
    assert.deepEqual(values, Object.assign({}, ...structs.map((s) => layoutValues(s, layouts[s]!))));
  });
});
