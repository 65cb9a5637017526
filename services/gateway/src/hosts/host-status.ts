import { Backend, type Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import { toVplaneError, unaryCall } from "@vplane/service-kit";
import type { HostConnections, ServiceKind } from "./host-clients.js";
import type { HostRecord, ServiceStatus } from "../schemas/host-schema.js";

const BACKEND_NAMES: Record<number, "emulated" | "native" | "unspecified"> = {
  [Backend.BACKEND_EMULATED]: "emulated",
  [Backend.BACKEND_NATIVE]: "native",
};

function capabilitiesView(
  capabilities: Capabilities,
): Pick<ServiceStatus, "version" | "backends" | "limits"> {
  return {
    version: capabilities.version,
    backends: capabilities.backends.map((b) => ({
      backend: BACKEND_NAMES[b.backend] ?? "unspecified",
      available: b.available,
      ...(b.unavailableReason ? { unavailableReason: b.unavailableReason } : {}),
      ...(b.unavailableCode ? { unavailableCode: b.unavailableCode } : {}),
    })),
    limits: Object.fromEntries(Object.entries(capabilities.limits).map(([k, v]) => [k, Number(v)])),
  };
}

async function serviceStatus(
  connections: HostConnections,
  kind: ServiceKind,
  address: string,
  getCapabilities: () => Promise<{ capabilities: Capabilities | undefined }>,
): Promise<ServiceStatus> {
  const [health, capabilities] = await Promise.all([
    connections.healthOf(address),
    connections
      .call(kind, "GetCapabilities", () => getCapabilities())
      .then(
        (response) => ({ ok: true as const, capabilities: response.capabilities }),
        (error: unknown) => ({ ok: false as const, error: toVplaneError(error) }),
      ),
  ]);
  const status: ServiceStatus = { address, health };
  if (capabilities.ok) {
    if (capabilities.capabilities) Object.assign(status, capabilitiesView(capabilities.capabilities));
  } else {
    const { code, reason, message } = capabilities.error;
    status.error = { code, reason, message };
  }
  return status;
}

/**
 * What a host's three services say right now: grpc.health.v1 and GetCapabilities (which backends
 * each offers, and why not), asked in parallel with a short deadline.
 */
export async function probeHost(connections: HostConnections, host: HostRecord, timeoutMs = 2000) {
  const clients = connections.clientsOf(host.addresses);
  const { addresses } = host;
  const [interruptController, iommu, migration] = await Promise.all([
    serviceStatus(connections, "interrupt-controller", addresses.interruptController, () =>
      unaryCall(clients.interrupt.getCapabilities.bind(clients.interrupt), {}, { timeoutMs }),
    ),
    serviceStatus(connections, "iommu", addresses.iommu, () =>
      unaryCall(clients.iommu.getCapabilities.bind(clients.iommu), {}, { timeoutMs }),
    ),
    serviceStatus(connections, "migration", addresses.migration, () =>
      unaryCall(clients.migration.getCapabilities.bind(clients.migration), {}, { timeoutMs }),
    ),
  ]);
  return { interruptController, iommu, migration };
}
