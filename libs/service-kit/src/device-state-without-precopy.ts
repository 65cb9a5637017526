import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import type { DeviceStateHandlers, ImportStream } from "./device-state-service.js";
import { VplaneError } from "./vplane-error.js";

/** What a device service does with one VM's devices, whichever backend holds them. */
export interface VmDevices {
  /** Throws NOT_FOUND if the VM has no devices here, FAILED_PRECONDITION if they are quiesced. */
  requireRunning(vm: string): void;
  /** Throws INVALID_ARGUMENT for a malformed VM id. */
  checkVmId(vm: string): void;
  quiesce(vm: string): { dirtyPages: bigint[]; pageSize: bigint };
  /** The VM's full sections; sealed for `destination` (MigrationSeals) when one is named. */
  exportSections(vm: string, destination: string): pb.DeviceSection[];
  /** The devices of full-state sections, quiesced and durable; their names. */
  importSections(stream: ImportStream, requestId: string): Promise<string[]>;
  resume(vm: string): void;
}

/**
 * The pre-copy half of DeviceStateHandlers for devices whose backend does not track its changes
 * (issue 14): the iterations carry nothing, the stop-and-copy the whole state, which the
 * destination imports in one piece when it finishes.
 */
export function withoutPreCopy(
  devices: VmDevices,
  service: string,
): Pick<
  DeviceStateHandlers,
  "readPreCopy" | "preCopyInfo" | "stopAndCopy" | "prepareImport" | "finishImport"
> {
  return {
    readPreCopy: (vm) => {
      devices.requireRunning(vm);
      return [];
    },

    preCopyInfo: (vm) => {
      devices.requireRunning(vm);
      return { initialBytes: 0n, dirtyBytes: 0n };
    },

    stopAndCopy: (vm, destination) => {
      const { dirtyPages, pageSize } = devices.quiesce(vm);
      return { sections: devices.exportSections(vm, destination), dirtyPages, pageSize };
    },

    prepareImport: (stream) => {
      devices.checkVmId(stream.vm);
      if (stream.sections.length > 0) {
        throw new VplaneError({
          code: "UNIMPLEMENTED",
          reason: "PRECOPY_DELTAS_UNSUPPORTED",
          message: `this ${service} service does not apply pre-copy deltas`,
        });
      }
      return Promise.resolve([]);
    },

    finishImport: async (stream, resume) => {
      const names = await devices.importSections(stream, "");
      if (resume) devices.resume(stream.vm);
      return names;
    },
  };
}
