import { closeSync, openSync } from "node:fs";
import { KernelError, MappedRegion } from "@vplane/host-kernel";
import { SmmuError } from "@vplane/smmuv3";
import { refuseState, VplaneError } from "@vplane/service-kit";
import { guestMemorySpec, openGuestMemory, type GuestMemorySpec } from "./guest-memory-binding.js";
import { openHostIommufd, setupFailureCode, thisHost, type NativeSmmuHost } from "./native-probe.js";
import { NativeSmmuBackend } from "./native-smmu-backend.js";
import { NativeSetupError, type NativeSmmuFds } from "./native-smmu-objects.js";
import { hostVfioDevices } from "./native-vfio-devices.js";
import type { BackendOpening } from "./smmu-backend.js";
import type { SmmuRecord } from "./smmu-config-store.js";

/** Where a NATIVE SMMU's fds come from, and what is done with them when it no longer needs them. */
interface SmmuFdSource {
  fds: NativeSmmuFds;
  release(why: string): void;
  whenVmmGone?(listener: () => void): void;
}

const refusal = (reason: string, message: string, field?: string, errno?: number) =>
  new VplaneError({ code: "FAILED_PRECONDITION", reason, message, field, errno });

/**
 * The factory's opener for NATIVE SMMUs (backend-factory.ts), in order: the host's steps of the
 * probe (an Arm host, the kernel-call library, /dev/iommu: refused with the probe's code and
 * reason), a 4 KiB stage-2 granule, the guest RAM file, then the fds — those a VMM handed over for
 * this SMMU's name when the service has a handoff socket (docs/vmm-handoff.md; none handed over:
 * VMM_HANDOFF_MISSING), else the service's own (/dev/iommu and every VFIO device cdev of the
 * host, for standalone use and tests) — and the SMMU made on them, new or from an imported state.
 * A setup step the kernel refuses is FAILED_PRECONDITION with the probe's code for that step and
 * the errno; a state the kernel or the host cannot take is StateRefused. Nothing is left made on
 * failure: the SMMU's objects are destroyed in reverse, the RAM unmapped, the fds closed (a VMM's
 * are released: a device once bound to the iommufd cannot be bound again).
 */
export function openNativeSmmuBackend(
  record: SmmuRecord,
  opening: BackendOpening,
  host: NativeSmmuHost = thisHost,
): NativeSmmuBackend {
  const fields = requestFields(opening.imported !== undefined);
  if (record.stage2GranuleBits !== 12) {
    const message = "a NATIVE SMMU's stage 2 is the host's IOAS, mapped in 4 KiB pages";
    if (opening.imported)
      throw refuseState("NATIVE_GRANULE_UNSUPPORTED", message, "payload.stage2_granule_bits");
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "NATIVE_GRANULE_UNSUPPORTED",
      message: `${message}: stage2_granule_bytes 4096`,
      field: "smmu.stage2_granule_bytes",
    });
  }
  const opened = openHostIommufd(host);
  if ("refused" in opened) {
    const { unavailableCode, unavailableReason } = opened.refused;
    throw refusal(
      unavailableCode,
      `the native SMMU backend is unavailable on this host: ${unavailableReason}`,
      fields.backend,
    );
  }
  const name = `vms/${record.vm}/smmus/${record.smmuId}`;
  if (opening.handedOver) host.close(opened.iommufd); // the VMM's iommufd is the one used
  const source = opening.handedOver
    ? handedOverFds(name, opening.handedOver, fields.backend)
    : ownFds(opened.iommufd, host, fields.backend);
  let ram: MappedRegion;
  try {
    ram = mapGuestRam(
      guestMemorySpec(record.guestMemoryPath, BigInt(record.guestMemoryBytes), opening.dataDir),
      fields.guestMemoryPath,
    );
  } catch (error) {
    source.release(`the SMMU could not be made: ${(error as Error).message}`);
    throw error;
  }
  let released = false;
  const releaseAll = (why: string) => {
    if (released) return;
    released = true;
    ram.unmap();
    source.release(why);
  };
  let backend: NativeSmmuBackend;
  try {
    backend = new NativeSmmuBackend(
      {
        fds: source.fds,
        guestRam: ram,
        vmid: record.vmid,
        eventQueueDepth: record.eventQueueDepth,
        pageRequestTimeoutMs: record.pageRequestTimeoutMs,
        onClose: () => releaseAll(`${name} left this service (deleted, or released after a migration)`),
      },
      opening.imported?.state,
    );
  } catch (error) {
    releaseAll(`${name} could not be made: ${(error as Error).message}`);
    throw openingError(error, opening.imported !== undefined, fields.backend);
  }
  source.whenVmmGone?.(() => backend.markVmmGone());
  return backend;
}

/** Which request field a refusal names: CreateSmmu's, or ImportDeviceState's. */
function requestFields(importing: boolean): { backend: string; guestMemoryPath: string } {
  return importing
    ? { backend: "backend", guestMemoryPath: "guest_memory.path" }
    : { backend: "smmu.backend", guestMemoryPath: "smmu.guest_memory.path" };
}

/** The fds a VMM handed over for `name`; VMM_HANDOFF_MISSING if none is there (or its VMM has gone). */
function handedOverFds(
  name: string,
  handedOver: NonNullable<BackendOpening["handedOver"]>,
  field: string,
): SmmuFdSource {
  const handed = handedOver(name);
  if (!handed || handed.gone) {
    throw refusal(
      "VMM_HANDOFF_MISSING",
      `no VMM has handed over the iommufd and VFIO device fds for ${name}: on this service a NATIVE SMMU is made on the fds its VMM hands over on the handoff socket (docs/vmm-handoff.md), then created`,
      field,
    );
  }
  return {
    fds: handed.fds,
    release: (why) => handed.release(why),
    whenVmmGone: (listener) => handed.whenGone(listener),
  };
}

/** Standalone: the service's own /dev/iommu fd and every VFIO device cdev of this host (NO_VFIO_DEVICE if none opens). */
function ownFds(iommufd: number, host: NativeSmmuHost, field: string): SmmuFdSource {
  const devices = new Map<number, number>();
  const closeAll = () => {
    for (const fd of devices.values()) host.close(fd);
    host.close(iommufd);
  };
  try {
    for (const device of hostVfioDevices()) devices.set(device.streamId, host.openDevice(device.cdev));
  } catch (error) {
    closeAll();
    const errno = error instanceof KernelError ? error.errno : undefined;
    throw refusal(
      "NO_VFIO_DEVICE",
      `a VFIO device cdev does not open: ${(error as Error).message}`,
      field,
      errno,
    );
  }
  if (devices.size === 0) {
    closeAll();
    throw refusal(
      "NO_VFIO_DEVICE",
      "no VFIO device cdev under /dev/vfio/devices: a NATIVE SMMU is made on a device bound to vfio-pci",
      field,
    );
  }
  let open = true;
  return {
    fds: { iommufd, devices },
    release: () => {
      if (open) closeAll();
      open = false;
    },
  };
}

/**
 * The guest RAM file, mapped shared into this process: IOAS_MAP pins its pages by their user
 * address here. The file must be the VM's shared RAM (NATIVE_NEEDS_GUEST_RAM_FILE without one)
 * on tmpfs or hugetlbfs: the kernel refuses a long-term writable pin of other shared file
 * mappings (mm/gup.c, writable_file_mapping_allowed), which IOAS_MAP then answers EFAULT.
 */
function mapGuestRam(spec: GuestMemorySpec, field: string): MappedRegion {
  if (spec.path === "") {
    throw refusal(
      "NATIVE_NEEDS_GUEST_RAM_FILE",
      "a NATIVE SMMU maps the VM's guest RAM file for the kernel's stage 2: name one in guest_memory.path",
      field,
    );
  }
  openGuestMemory(spec).close(); // creates and sizes the file as the emulated backend would
  const fd = openSync(spec.path, "r+");
  try {
    return MappedRegion.map(fd, 0, spec.sizeBytes);
  } catch (error) {
    throw refusal(
      "GUEST_MEMORY_UNAVAILABLE",
      `cannot map guest memory ${spec.path}: ${(error as Error).message}`,
      field,
      error instanceof KernelError ? error.errno : undefined,
    );
  } finally {
    closeSync(fd);
  }
}

/** A setup step the kernel refused: the probe's code for it; an imported state refused: StateRefused. */
function openingError(error: unknown, importing: boolean, field: string): unknown {
  if (error instanceof NativeSetupError) {
    return refusal(
      setupFailureCode(error.step),
      `the host's SMMU refused ${error.message}`,
      field,
      error.failure instanceof KernelError ? error.failure.errno : undefined,
    );
  }
  // What the host cannot take of the state (checkImportableOnNative) names the state's field; a
  // kernel refusal keeps its errno and reason.
  if (importing && error instanceof SmmuError && error.errno === undefined) {
    return refuseState(error.reason, error.message, error.field ? `payload.${error.field}` : "payload");
  }
  return error;
}
