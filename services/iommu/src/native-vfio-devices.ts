import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { basename } from "node:path";

/** A VFIO device cdev of this host and the StreamID the service names it by. */
export interface HostVfioDevice {
  cdev: string;
  /** The PCI requester ID (bus << 8 | device << 3 | function) of the device behind it. */
  streamId: number;
}

/**
 * The VFIO device cdevs under /dev/vfio/devices, for an SMMU the service opens on its own
 * (standalone use and tests). Each is named by its PCI requester ID, which is its StreamID where
 * the firmware's iommu-map is the identity (QEMU virt's is); on other hosts a VMM hands the fds
 * over with the StreamIDs it knows. Non-PCI devices are left out.
 */
export function hostVfioDevices(root = "/dev/vfio/devices", sysfs = "/sys/class/vfio-dev"): HostVfioDevice[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort()
    .flatMap((name) => {
      const pci = /^[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(
        basename(readlinkSync(`${sysfs}/${name}/device`)),
      );
      if (!pci) return [];
      const [, bus, slot, fn] = pci;
      return [
        {
          cdev: `${root}/${name}`,
          streamId: (parseInt(bus!, 16) << 8) | (parseInt(slot!, 16) << 3) | parseInt(fn!, 16),
        },
      ];
    });
}
