// A host's three services as the benchmarks start them from their entry points: where each
// service's main.js is and which variable sets the address it listens on.
import { fileURLToPath } from "node:url";

export type HostServiceName = "interrupt-controller" | "iommu" | "migration";

const PACKAGE: Record<HostServiceName, string> = {
  "interrupt-controller": "@vplane/interrupt-controller",
  iommu: "@vplane/iommu",
  migration: "@vplane/migration",
};

/** The variable each service reads its listening address from. */
export const ADDR_ENV: Record<HostServiceName, string> = {
  "interrupt-controller": "VPLANE_INTERRUPT_ADDR",
  iommu: "VPLANE_IOMMU_ADDR",
  migration: "VPLANE_MIGRATION_ADDR",
};

/** The path of the service's entry point (its package's main.js), as deployed. */
export function serviceEntry(service: HostServiceName): string {
  return fileURLToPath(new URL("main.js", import.meta.resolve(PACKAGE[service])));
}
