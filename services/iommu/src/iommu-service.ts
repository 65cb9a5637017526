import { IommuServiceService } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { buildCapabilities, type ServiceDescription } from "@vplane/service-kit";
import { probeNativeSmmu } from "./native-probe.js";

/** The iommu service: its gRPC API over the backends this host offers. */
export const iommuDescription: ServiceDescription<Record<string, never>> = {
  name: "iommu",
  envPrefix: "IOMMU",
  defaultPort: 50052,
  options: {},
  start: ({ handlers }) => {
    const capabilities = buildCapabilities({ service: "iommu", native: probeNativeSmmu() });
    return Promise.resolve({
      services: [
        {
          definition: IommuServiceService,
          implementation: { getCapabilities: handlers.unary(() => ({ capabilities })) },
        },
      ],
    });
  },
};
