import { unaryCall } from "@vplane/service-kit";
import type { HostConnections } from "./host-clients.js";
import type { HostRecord } from "../schemas/host-schema.js";

/** One device a host's services hold: its resource name and the VM (uid) it belongs to. */
export interface HostDevice {
  kind: "controller" | "smmu";
  name: string;
  vmUid: string;
}

const PAGE = 1000;

/**
 * Every device `host` holds, from its own List RPCs (ListControllers, ListSmmus; all pages).
 * Rejects when either service does not answer: a partial list must never read as "absent".
 */
export async function listHostDevices(connections: HostConnections, host: HostRecord): Promise<HostDevice[]> {
  const clients = connections.clientsOf(host.addresses);
  const devices: HostDevice[] = [];
  let pageToken = "";
  do {
    const page = await connections.call("interrupt-controller", "ListControllers", (o) =>
      unaryCall(clients.interrupt.listControllers.bind(clients.interrupt), { pageSize: PAGE, pageToken }, o),
    );
    for (const c of page.controllers) devices.push({ kind: "controller", name: c.name, vmUid: c.vm });
    pageToken = page.nextPageToken;
  } while (pageToken);
  do {
    const page = await connections.call("iommu", "ListSmmus", (o) =>
      unaryCall(clients.iommu.listSmmus.bind(clients.iommu), { parent: "", pageSize: PAGE, pageToken }, o),
    );
    for (const s of page.smmus) devices.push({ kind: "smmu", name: s.name, vmUid: s.vm });
    pageToken = page.nextPageToken;
  } while (pageToken);
  return devices;
}

/** Deletes one device on `host`: true when this call deleted it, false when it was gone already. */
export async function deleteHostDevice(
  connections: HostConnections,
  host: HostRecord,
  device: HostDevice,
  requestId: string,
): Promise<boolean> {
  const clients = connections.clientsOf(host.addresses);
  try {
    if (device.kind === "controller") {
      await connections.call("interrupt-controller", "DeleteController", (o) =>
        unaryCall(
          clients.interrupt.deleteController.bind(clients.interrupt),
          { name: device.name, requestId },
          o,
        ),
      );
    } else {
      await connections.call("iommu", "DeleteSmmu", (o) =>
        unaryCall(clients.iommu.deleteSmmu.bind(clients.iommu), { name: device.name, requestId }, o),
      );
    }
  } catch (error) {
    if ((error as { code?: string }).code !== "NOT_FOUND") throw error;
    return false;
  }
  return true;
}
