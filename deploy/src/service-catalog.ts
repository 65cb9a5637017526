/** How one vplane process is started and probed: its entry module, protocol and listen address. */
export interface CatalogEntry {
  readonly name: ServiceName;
  /** Entry module, relative to the repository root. */
  readonly main: string;
  /** `grpc`: probed with grpc.health.v1; `http`: probed with `GET /healthz`. */
  readonly kind: "grpc" | "http";
  /** Environment variable holding the listen address (host:port). */
  readonly addressVariable: string;
  readonly defaultAddress: string;
}

/** The container's environment variable naming the service it runs (start-service.ts, healthcheck.ts). */
export const SERVICE_VARIABLE = "VPLANE_SERVICE";

export type ServiceName = "interrupt-controller" | "iommu" | "migration" | "gateway";

// The defaults are DESIGN.md's ports; the services own them too (ServiceDescription.defaultPort),
// and test/service-catalog.test.ts checks that both agree. Listed in start order: the gateway,
// which calls the others, last.
export const serviceCatalog: readonly CatalogEntry[] = [
  entry("interrupt-controller", "grpc", "VPLANE_INTERRUPT_ADDR", 50051),
  entry("iommu", "grpc", "VPLANE_IOMMU_ADDR", 50052),
  entry("migration", "grpc", "VPLANE_MIGRATION_ADDR", 50053),
  entry("gateway", "http", "VPLANE_GATEWAY_ADDR", 8080),
];

function entry(name: ServiceName, kind: CatalogEntry["kind"], addressVariable: string, port: number) {
  return {
    name,
    main: `services/${name}/dist/src/main.js`,
    kind,
    addressVariable,
    defaultAddress: `127.0.0.1:${port}`,
  };
}

/** The catalog entry for `name`, or an error that lists the known names. */
export function catalogEntry(name: string): CatalogEntry {
  const found = serviceCatalog.find((e) => e.name === name);
  if (!found) {
    const known = serviceCatalog.map((e) => e.name).join(", ");
    throw new Error(`unknown service "${name}"; known: ${known}`);
  }
  return found;
}
