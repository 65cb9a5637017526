import { closeSync, openSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { FileGuestMemory } from "@vplane/guest-memory";
import { MappedRegion, closeFd, openDevice } from "@vplane/host-kernel";
import { EmulatedSmmuBackend, NativeSmmuBackend, type SmmuBackend } from "@vplane/iommu/native";
import { decodeSmmuState } from "@vplane/smmuv3";
import { CONTRACT_RAM_BYTES, type ContractRig } from "@vplane/iommu/testing";
import { EduDevice } from "./edu-device.js";

/** The edu device's VFIO cdev and its StreamID (on QEMU virt the SMMU's iommu-map is the identity: SID = PCI RID). */
export function eduDevice(): { cdev: string; streamId: number } {
  const cdevs = readdirSync("/dev/vfio/devices");
  if (cdevs.length !== 1) throw new Error(`expected one VFIO cdev, found ${cdevs.join(", ") || "none"}`);
  const pci = basename(readlinkSync(`/sys/class/vfio-dev/${cdevs[0]}/device`));
  const [, bus, slot, fn] = /^[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pci)!;
  return {
    cdev: `/dev/vfio/devices/${cdevs[0]}`,
    streamId: (parseInt(bus!, 16) << 8) | (parseInt(slot!, 16) << 3) | parseInt(fn!, 16),
  };
}

let rigs = 0;

/**
 * The contract rig on the real kernel: a fresh iommufd and edu's cdev opened for it, 16 MiB of
 * guest RAM in a tmpfs file that the backend maps (IOAS_MAP takes its user address) and the
 * scenario writes through, the native backend over them, and edu's DMA as the device's.
 */
export function nativeRig(): ContractRig & { backend: NativeSmmuBackend } {
  const { cdev, streamId } = eduDevice();
  const path = `/tmp/contract-ram-${rigs++}`;
  const memory = new FileGuestMemory(path, CONTRACT_RAM_BYTES);
  const ramFd = openSync(path, "r+");
  const guestRam = MappedRegion.map(ramFd, 0, CONTRACT_RAM_BYTES);
  /** A fresh iommufd and device fd, the native SMMU over them and edu's BAR; nothing left open on failure. */
  const attach = (state?: Uint8Array) => {
    const iommufd = openDevice("/dev/iommu");
    const deviceFd = openDevice(cdev);
    try {
      const backend = new NativeSmmuBackend(
        {
          fds: { iommufd, devices: new Map([[streamId, deviceFd]]) },
          guestRam,
          vmid: 1,
          eventQueueDepth: 64,
          pageRequestTimeoutMs: 10_000,
        },
        state && decodeSmmuState(state),
      );
      try {
        return { iommufd, deviceFd, backend, edu: new EduDevice(deviceFd) };
      } catch (error) {
        backend.close();
        throw error;
      }
    } catch (error) {
      closeFd(deviceFd);
      closeFd(iommufd);
      throw error;
    }
  };
  const detach = (a: ReturnType<typeof attach>) => {
    a.edu.close();
    a.backend.close();
    closeFd(a.deviceFd);
    closeFd(a.iommufd);
  };
  const releaseRam = () => {
    guestRam.unmap();
    closeSync(ramFd);
    memory.close();
    rmSync(path, { force: true });
  };
  let attached: ReturnType<typeof attach>;
  try {
    attached = attach();
  } catch (error) {
    releaseRam();
    throw error;
  }
  const peers: SmmuBackend[] = [];
  return {
    get backend() {
      return attached.backend;
    },
    memory,
    streamId,
    emulatedPeer(state) {
      const view = new FileGuestMemory(path, CONTRACT_RAM_BYTES);
      const peer = state
        ? new EmulatedSmmuBackend(view, { imported: decodeSmmuState(state), vmid: 2, limits: {} })
        : new EmulatedSmmuBackend(view, { vmid: 2, features: attached.backend.features });
      peers.push(peer);
      return peer;
    },
    // A device binds to one iommufd for as long as its fd is open: a new SMMU gets new fds.
    reopen(state) {
      detach(attached);
      attached = attach(state);
    },
    async copy(source, target, length) {
      await attached.edu.readFromRam(source, length);
      await attached.edu.writeToRam(target, length);
    },
    async settle(count) {
      const deadline = Date.now() + 3000;
      while (attached.backend.log.nextSequence < BigInt(count) && Date.now() < deadline) {
        attached.backend.stream.drain();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Events of the same DMA may still be on their way: a little more for those.
      await new Promise((resolve) => setTimeout(resolve, 200));
      attached.backend.stream.drain();
    },
    close() {
      for (const peer of peers) peer.close();
      detach(attached);
      releaseRam();
    },
  };
}
