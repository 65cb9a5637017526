import type * as pb from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import { StoreUnavailableError } from "@vplane/store";
import type {
  DeviceStateHandlers,
  FinishedImport,
  ImportStream,
  StopAndCopyResult,
} from "./device-state-service.js";
import { VplaneError } from "./vplane-error.js";
import { afterWrites } from "./after-writes.js";
import { wallClockUs } from "./wall-clock.js";

/**
 * Change tracking of one device's backend for pre-copy (issue 14, VFIO's PRE_COPY): a backend
 * that has it hands out what changed in its state since the last read, in its state format's
 * delta; without it the state moves whole in the stop.
 */
export interface BackendPreCopy<State> {
  /** What changed since the last read (everything when `restart`); undefined when nothing did. Quiesced: the stop's delta. */
  read(restart: boolean): State | undefined;
  /** VFIO_MIG_GET_PRECOPY_INFO: the bytes of a first read still to come, or of what changed since the last. */
  pendingBytes(): { initial: number; dirty: number };
  /** A read started the tracking and neither resume nor end stopped it. */
  tracking(): boolean;
  end(): void;
}

/**
 * The pre-copy capability of a device service whose backends track their changes (issue 14,
 * VFIO's PRE_COPY): deltas out on the source, a prepared import on the destination.
 */
export interface PreCopyDevices {
  /**
   * Pre-copy iteration `iteration` of the VM (0 restarts the tracking: everything): the sections
   * of its devices that changed since the last read; none from a backend that cannot track.
   */
  read(vm: string, iteration: number): pb.DeviceSection[];
  /** What a read would move now (VFIO_MIG_GET_PRECOPY_INFO). */
  info(vm: string): pb.PreCopyInfo;
  /**
   * The VM's devices quiesced (as VmDevices.quiesce did) and sealed for `destination`: the
   * runtime state and the configuration changed since the last read, as delta sections; undefined
   * when no read started a tracking pre-copy (the full state moves instead).
   */
  stop(vm: string, destination: string): pb.DeviceSection[] | undefined;
  /** The destination builds and makes durable one iteration's deltas (marked preparing). */
  prepare(stream: ImportStream, iteration: number): Promise<string[]>;
  /** The VM has a prepared import here. */
  prepared(vm: string): boolean;
  /**
   * Applies the stop's deltas to the prepared import, quiesced: the devices become the VM's
   * here, their store records still marked preparing until the returned write.
   */
  finish(stream: ImportStream): FinishedDevices;
  /** Resolves once every write so far is durable (Store.sync): a finish's too. */
  sync(): Promise<void>;
}

/** A prepared import made the VM's devices (PreCopyDevices.finish), not yet written. */
export interface FinishedDevices {
  devices: string[];
  /**
   * Writes them (their records no longer preparing) as the store's "deferred" writes, made
   * durable by `sync`, once `start` resolves; the VM's calls from now on write after it. Called
   * once the devices resumed, so that the write is not in the downtime (issue 14). If it fails
   * they stay the VM's here, running, their records preparing (a restart drops them):
   * FinishImport answers the failure, the source keeps the VM and the destination's migration
   * service releases them.
   */
  write(start: Promise<void>): Promise<void>;
}

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
  /** Lets quiesced devices run again; ends their pre-copy tracking. */
  resume(vm: string): void;
  /**
   * Destroys the VM's devices here, and discards an import prepared for it (nothing of it left,
   * durable records included); their names. NOT_FOUND when there is neither.
   */
  release(vm: string): Promise<string[]>;
  /** Absent: the iterations carry nothing and the stop-and-copy the whole state. */
  preCopy?: PreCopyDevices;
}

/**
 * VmDevices.requireRunning's refusal: FAILED_PRECONDITION `reason` (CONTROLLER_QUIESCED,
 * SMMU_QUIESCED), `devices` naming them ("controller is", "SMMUs are").
 */
export function devicesQuiesced(vm: string, reason: string, devices: string): VplaneError {
  return new VplaneError({
    code: "FAILED_PRECONDITION",
    reason,
    field: "vm",
    message: `VM ${vm}'s ${devices} quiesced: the state moves in the stop-and-copy`,
  });
}

/**
 * A finished import that its store did not make durable, as FinishImport answers it: UNAVAILABLE
 * STORE_UNAVAILABLE (the source keeps the VM; a later migration may succeed), other errors as
 * they are.
 */
function notDurable(vm: string, error: unknown): unknown {
  if (!(error instanceof StoreUnavailableError)) return error;
  return new VplaneError({
    code: "UNAVAILABLE",
    reason: "STORE_UNAVAILABLE",
    message: `VM ${vm}'s devices resumed here, but the configuration store did not make them durable (${error.message}): the VM stays on the source`,
  });
}

/**
 * A pre-copy iteration or finish for a VM with no prepared import here (FAILED_PRECONDITION
 * PRECOPY_NOT_PREPARED on `field`), or (`after` set) one not after the last prepared iteration
 * (PRECOPY_ITERATION_UNEXPECTED).
 */
export function preCopyNotPrepared(
  vm: string,
  field: string,
  after?: { prepared: number; got: number },
): VplaneError {
  if (after) {
    return new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: "PRECOPY_ITERATION_UNEXPECTED",
      field,
      message: `VM ${vm}'s import is prepared up to iteration ${after.prepared}, not before ${after.got}`,
    });
  }
  return new VplaneError({
    code: "FAILED_PRECONDITION",
    reason: "PRECOPY_NOT_PREPARED",
    field,
    message: `VM ${vm} has no import prepared here: a pre-copy starts at iteration 0`,
  });
}

/**
 * vplane.devicestate.v1.DeviceStateService over one service's VmDevices, the same for every
 * device service: the handlers only pick the calls, the devices do the work (`service` names
 * the service in refusals).
 */
export function deviceStateHandlers(devices: VmDevices, service: string) {
  const preCopy = devices.preCopy;
  return {
    quiesceDevices: ({ vm }: pb.QuiesceDevicesRequest): pb.QuiesceDevicesResponse => devices.quiesce(vm),

    exportDeviceState: ({ vm, destination }: pb.ExportDeviceStateRequest): pb.ExportDeviceStateResponse => ({
      sections: devices.exportSections(vm, destination ?? ""),
    }),

    importDeviceState: async (
      request: pb.ImportDeviceStateRequest,
    ): Promise<pb.ImportDeviceStateResponse> => ({
      devices: await devices.importSections(request, request.requestId),
    }),

    resumeDevices: ({ vm }: pb.ResumeDevicesRequest): pb.ResumeDevicesResponse => {
      devices.resume(vm);
      return {};
    },

    releaseDevices: async ({ vm }: pb.ReleaseDevicesRequest): Promise<pb.ReleaseDevicesResponse> => ({
      devices: await devices.release(vm),
    }),

    readPreCopy: (vm: string, iteration: number): pb.DeviceSection[] => {
      devices.requireRunning(vm);
      return preCopy ? preCopy.read(vm, iteration) : [];
    },

    preCopyInfo: (vm: string): pb.PreCopyInfo => {
      devices.requireRunning(vm);
      return preCopy ? preCopy.info(vm) : { initialBytes: 0n, dirtyBytes: 0n };
    },

    stopAndCopy: (vm: string, destination: string): StopAndCopyResult => {
      const pausedAtUs = wallClockUs(); // before the quiesce: the downtime is not understated
      const { dirtyPages, pageSize } = devices.quiesce(vm);
      const sections = preCopy?.stop(vm, destination) ?? devices.exportSections(vm, destination);
      return { sections, dirtyPages, pageSize, pausedAtUs };
    },

    prepareImport: (stream: ImportStream, iteration: number): Promise<string[]> => {
      devices.checkVmId(stream.vm);
      // A source that cannot track sends empty iterations: its state comes whole at the finish.
      if (stream.sections.length === 0) return Promise.resolve([]);
      if (!preCopy) {
        throw new VplaneError({
          code: "UNIMPLEMENTED",
          reason: "PRECOPY_DELTAS_UNSUPPORTED",
          message: `this ${service} service does not apply pre-copy deltas`,
        });
      }
      return preCopy.prepare(stream, iteration);
    },

    finishImport: async (stream: ImportStream, resume: boolean): Promise<FinishedImport> => {
      devices.checkVmId(stream.vm);
      const resumed = (names: string[], durable: () => Promise<void>): FinishedImport => {
        if (resume) devices.resume(stream.vm);
        const resumedAtUs = resume ? wallClockUs() : 0n;
        return { devices: names, resumedAtUs, durable: durable() };
      };
      // A full import is durable before it resumes, as ImportDeviceState.
      if (!preCopy?.prepared(stream.vm))
        return resumed(await devices.importSections(stream, ""), () => Promise.resolve());
      // A prepared import resumes first, then writes and flushes (out of the downtime); the
      // answer waits for both, so the source lets go of the VM only once it is durable here.
      // The write waits for the end of this turn of the event loop: another device service in
      // this process (a host's services in one) reads its own delta in the same turn, and
      // resumes before this write rather than after it.
      const finished = preCopy.finish(stream);
      return resumed(finished.devices, () =>
        finished
          .write(afterWrites())
          .then(() => preCopy.sync())
          .catch((error: unknown) => {
            throw notDurable(stream.vm, error);
          }),
      );
    },
  } satisfies DeviceStateHandlers;
}
