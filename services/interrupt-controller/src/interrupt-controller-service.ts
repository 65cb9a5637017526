import { InterruptControllerServiceService } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { buildCapabilities, type ServiceDescription } from "@vplane/service-kit";
import { probeNativeXive } from "./native-probe.js";

/** KVMPPC_XIVE_NR_IRQS: the most sources a KVM XIVE device has (xive.md §1.2). */
export const MAX_SOURCES = 1024n * 1024n;

/** The interrupt-controller service: its gRPC API over the backends this host offers. */
export const interruptControllerDescription: ServiceDescription<Record<string, never>> = {
  name: "interrupt-controller",
  envPrefix: "INTERRUPT",
  defaultPort: 50051,
  options: {},
  start: ({ handlers }) => {
    const capabilities = buildCapabilities({
      service: "interrupt-controller",
      native: probeNativeXive(),
      limits: { max_sources: MAX_SOURCES },
    });
    return Promise.resolve({
      services: [
        {
          definition: InterruptControllerServiceService,
          implementation: { getCapabilities: handlers.unary(() => ({ capabilities })) },
        },
      ],
    });
  },
};
