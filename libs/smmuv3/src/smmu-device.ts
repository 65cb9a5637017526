import type { GuestSte } from "./stream-table-entry.js";
import type { StreamConfig } from "./stream-config.js";

/** A physical stream bound to the guest's view of it (the iommufd vdevice). */
export interface DeviceBinding {
  streamId: number;
  virtualStreamId: number;
  /** The device can fault recoverably (PRI, or the HWPT is linked to a fault queue). */
  pageRequests: boolean;
  /** iommufd form: the guest STE words installed for this device. */
  guestSte: GuestSte | undefined;
}

/** A bound device as the SMMU keeps it: the binding and its cached stream configuration. */
export interface DeviceRecord extends DeviceBinding {
  state: StreamConfig | undefined;
}

/** The binding of a device, without its caches. */
export function publicBinding(d: DeviceRecord): DeviceBinding {
  return {
    streamId: d.streamId,
    virtualStreamId: d.virtualStreamId,
    pageRequests: d.pageRequests,
    guestSte: d.guestSte,
  };
}
