import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { MigrationServiceService } from "@vplane/proto/gen/vplane/migration/v1/service";
import { buildCapabilities, type ServiceDescription } from "@vplane/service-kit";

/** The migration service: save, restore and live migration of device state. */
export const migrationDescription: ServiceDescription<Record<string, never>> = {
  name: "migration",
  envPrefix: "MIGRATION",
  defaultPort: 50053,
  options: {},
  start: ({ handlers }) => {
    const capabilities = buildCapabilities({
      service: "migration",
      native: {
        backend: Backend.BACKEND_NATIVE,
        available: false,
        unavailableCode: "NO_NATIVE_DEVICES",
        unavailableReason:
          "native device state moves with the native backends, which this host does not offer",
      },
    });
    return Promise.resolve({
      services: [
        {
          definition: MigrationServiceService,
          implementation: { getCapabilities: handlers.unary(() => ({ capabilities })) },
        },
      ],
    });
  },
};
