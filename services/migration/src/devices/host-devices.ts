// This host's device services, seen through their DeviceStateService: the interrupt controller
// (sections "xive", "xics") and the IOMMU ("smmuv3"). A VM may have devices on either or both;
// a service that answers NOT_FOUND simply holds none of that VM's devices.
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import type {
  DeviceSection,
  DeviceStateChunk,
  FinishImportRequest,
  FinishImportResponse,
  PrepareImportRequest,
  PrepareImportResponse,
} from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import {
  ClientStreamCall,
  VplaneError,
  clientChannelOptions,
  clientCredentials,
  serverStreamCall,
  unaryCall,
  type TlsFiles,
} from "@vplane/service-kit";
import { mergeRanges, pagesOf, rangesOf, type DirtyPages, type DirtyRange } from "./dirty-pages.js";

export type DeviceRole = "interrupt-controller" | "iommu";

/** Where a device-state stream's chunks go as they arrive (the migration stream). */
export type ChunkSink = (role: DeviceRole, chunk: DeviceStateChunk) => Promise<void>;

/**
 * Where the stop-and-copy's chunks go as they arrive; `lastOfAll`: no chunk of any service follows
 * this one (false when that is not known yet, e.g. a service still to answer NOT_FOUND).
 */
export type StopChunkSink = (role: DeviceRole, chunk: DeviceStateChunk, lastOfAll: boolean) => Promise<void>;

/** A stop-and-copy whose last chunks all went to the sink. */
export interface StopAndCopyOutcome {
  bytes: number;
  dirty: DirtyRange[];
  pageSize: bigint;
  /** When the first device service paused, by its clock (µs since the epoch); 0 if none said. */
  pausedAtUs: bigint;
  /** Settles once every StopAndCopy stream has ended: resolved if all ended OK. */
  ended: Promise<void>;
}

/** Counts the gRPC messages of the device-state calls made while it is given (one stop). */
export class MessageCount {
  count = 0;
}

/** Which service imports a section kind; sections are exported in ROLES order. */
const ROLE_OF_KIND: Record<string, DeviceRole> = {
  xive: "interrupt-controller",
  xics: "interrupt-controller",
  smmuv3: "iommu",
};
export const ROLES: readonly DeviceRole[] = ["interrupt-controller", "iommu"];

export { type DirtyPages } from "./dirty-pages.js";

export interface HostDevicesOptions {
  targets: Record<DeviceRole, string>;
  tls?: Partial<TlsFiles>;
  /** Per-call deadline, ms. */
  callTimeoutMs: number;
}

export class HostDevices {
  private readonly clients: Map<DeviceRole, DeviceStateServiceClient>;

  constructor(private readonly options: HostDevicesOptions) {
    const credentials = clientCredentials(options.tls);
    this.clients = new Map(
      ROLES.map((role) => [
        role,
        new DeviceStateServiceClient(options.targets[role], credentials, clientChannelOptions()),
      ]),
    );
  }

  /** Quiesces every device of `vm`; the pages they dirtied (ascending, de-duplicated). */
  async quiesce(vm: string): Promise<DirtyPages> {
    const answers = await this.onEveryRole(vm, undefined, (client, options) =>
      unaryCall(client.quiesceDevices.bind(client), { vm }, options),
    );
    let pageSize = 0n;
    const ranges = [...answers.values()].map((answer) => {
      if (answer.pageSize > pageSize) pageSize = answer.pageSize;
      return answer.dirtyPages.map((address) => ({ address, bytes: answer.pageSize }));
    });
    return pagesOf(mergeRanges(ranges), pageSize);
  }

  /**
   * The devices' sections. `destination` (a live migration's): the services refuse what would
   * change the exported state from here on, naming it (UNAVAILABLE VM_MIGRATING).
   */
  async export(vm: string, signal?: AbortSignal, destination?: string): Promise<DeviceSection[]> {
    const answers = await this.onEveryRole(vm, signal, (client, options) =>
      unaryCall(client.exportDeviceState.bind(client), { vm, destination }, options),
    );
    return ROLES.flatMap((role) => answers.get(role)?.sections ?? []);
  }

  /**
   * Imports sections (quiesced) all or nothing: if a service refuses, what the others imported is
   * released before the error is rethrown.
   */
  async import(
    vm: string,
    sections: DeviceSection[],
    guestMemory: GuestMemory | undefined,
    signal?: AbortSignal,
  ) {
    const byRole = new Map<DeviceRole, DeviceSection[]>();
    sections.forEach((section, index) => {
      const role = ROLE_OF_KIND[section.kind];
      if (!role) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "UNKNOWN_DEVICE_KIND",
          field: `sections[${index}].kind`,
          message: `section ${index} holds a "${section.kind}" device, which no service here imports`,
        });
      }
      byRole.set(role, [...(byRole.get(role) ?? []), section]);
    });
    // Concurrently: each service imports only its own sections, and the downtime is the slower one.
    const roles = ROLES.filter((role) => byRole.has(role));
    const outcomes = await Promise.allSettled(
      roles.map((role) => {
        const client = this.clients.get(role)!;
        return unaryCall(
          client.importDeviceState.bind(client),
          {
            vm,
            sections: byRole.get(role)!,
            guestMemory,
            requestId: "",
            backend: Backend.BACKEND_UNSPECIFIED,
          },
          this.callOptions(signal),
        );
      }),
    );
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) {
      await Promise.all(
        roles
          .filter((_, i) => outcomes[i]!.status === "fulfilled")
          .map((role) => this.releaseOn(role, vm).catch(() => undefined)),
      );
      throw failed.reason;
    }
    return outcomes.flatMap((outcome) => (outcome.status === "fulfilled" ? outcome.value.devices : []));
  }

  /**
   * Pre-copy iteration `iteration` of `vm` (issue 14): each service's stream of the state that
   * changed since its previous one, chunk by chunk into `sink`, one service after the other.
   * Iteration 0 finds the services that hold devices of the VM (NOT_FOUND: none there); later
   * ones ask those `roles`. Returns them and the chunk bytes moved.
   */
  async readPreCopy(
    vm: string,
    iteration: number,
    roles: readonly DeviceRole[],
    sink: ChunkSink,
    signal?: AbortSignal,
  ): Promise<{ roles: DeviceRole[]; bytes: number }> {
    const holding: DeviceRole[] = [];
    let bytes = 0;
    for (const role of roles) {
      const client = this.clients.get(role)!;
      try {
        const stream = serverStreamCall(
          client.readPreCopy.bind(client),
          { vm, iteration },
          this.callOptions(signal),
        );
        for await (const { chunk } of stream) {
          if (!chunk) throw streamOutOfShape(role, "ReadPreCopy", "sent a message without a chunk");
          bytes += chunk.data.length;
          await sink(role, chunk);
        }
        holding.push(role);
      } catch (error) {
        if (iteration === 0 && isNotFound(error)) continue;
        throw annotate(error, role);
      }
    }
    if (holding.length === 0) throw noDevices(vm);
    return { roles: holding, bytes };
  }

  /** The device state `roles` still have to move (VFIO's precopy info), summed. */
  async preCopyInfo(
    vm: string,
    roles: readonly DeviceRole[],
    signal?: AbortSignal,
  ): Promise<{ initialBytes: bigint; dirtyBytes: bigint }> {
    const answers = await Promise.all(
      roles.map((role) => {
        const client = this.clients.get(role)!;
        return unaryCall(client.getPreCopyInfo.bind(client), { vm }, this.callOptions(signal)).catch(
          (error: unknown) => Promise.reject(annotate(error, role)),
        );
      }),
    );
    let initialBytes = 0n;
    let dirtyBytes = 0n;
    for (const { info } of answers) {
      initialBytes += info?.initialBytes ?? 0n;
      dirtyBytes += info?.dirtyBytes ?? 0n;
    }
    return { initialBytes, dirtyBytes };
  }

  /**
   * The stop-and-copy of `vm` on every service in `roles` at once: each quiesces its devices and
   * streams what the destination still needs, chunk by chunk into `sink` as it arrives (the very
   * last one said so, when it is known to be: every other service's last chunk came first). Resolves
   * once every service's last chunk went into `sink`, not at the end of its stream (waiting for
   * the status would put one more hop inside the downtime): with the chunk bytes, the pages the
   * devices wrote, and `ended`, which settles when every stream has ended (rejecting with the
   * first failure). Every message is counted in `messages`. `findRoles` (no pre-copy found them):
   * a service that answers NOT_FOUND holds none of the VM's devices and is left out.
   */
  async stopAndCopy(
    vm: string,
    destination: string,
    roles: readonly DeviceRole[],
    sink: StopChunkSink,
    messages: MessageCount,
    findRoles = false,
  ): Promise<StopAndCopyOutcome> {
    let bytes = 0;
    let pageSize = 0n;
    let pausedAtUs = 0n;
    const dirty: DirtyRange[][] = [];
    let expected = roles.length;
    /** Last chunks that came (counted before they go into the sink), and that went into it. */
    let lastChunksCame = 0;
    let lastChunks = 0;
    let allLast!: () => void;
    const copied = new Promise<void>((resolve) => (allLast = resolve));
    const check = () => {
      if (lastChunks === expected) allLast();
    };
    // Not cut short by a cancel, and settled only once every stream ended: the resume that undoes
    // it must come after all of them.
    const ended = Promise.allSettled(
      roles.map(async (role) => {
        const client = this.clients.get(role)!;
        messages.count++;
        try {
          const stream = serverStreamCall(
            client.stopAndCopy.bind(client),
            { vm, destination },
            this.callOptions(),
          );
          let last = false;
          for await (const message of stream) {
            messages.count++;
            if (!message.chunk) throw streamOutOfShape(role, "StopAndCopy", "sent a message without a chunk");
            if (last) throw streamOutOfShape(role, "StopAndCopy", "sent a message after its last chunk");
            if (message.pageSize > 0n) {
              dirty.push(rangesOf(message.dirtyPages, message.pageSize));
              if (message.pageSize > pageSize) pageSize = message.pageSize;
            }
            const paused = message.pausedAtUs;
            if (paused > 0n && (pausedAtUs === 0n || paused < pausedAtUs)) pausedAtUs = paused;
            bytes += message.chunk.data.length;
            last = message.chunk.last;
            if (last) lastChunksCame++;
            await sink(role, message.chunk, last && lastChunksCame === expected);
            if (last) {
              lastChunks++;
              check();
            }
          }
          if (!last) throw streamOutOfShape(role, "StopAndCopy", "ended before its last chunk");
        } catch (error) {
          if (findRoles && isNotFound(error)) {
            expected--;
            return check();
          }
          throw annotate(error, role);
        }
      }),
    ).then((outcomes) => {
      const failed = outcomes.find((outcome) => outcome.status === "rejected");
      if (failed) throw failed.reason;
    });
    ended.catch(() => undefined); // awaited by the caller after the switchover
    if (roles.length > 0) await Promise.race([copied, ended]);
    if (expected === 0) throw noDevices(vm);
    return { bytes, dirty: mergeRanges(dirty), pageSize, pausedAtUs, ended };
  }

  /** Opens `role`'s PrepareImport stream (destination, one pre-copy iteration). */
  prepareImport(
    role: DeviceRole,
    signal?: AbortSignal,
  ): ClientStreamCall<PrepareImportRequest, PrepareImportResponse> {
    const client = this.clients.get(role)!;
    return new ClientStreamCall(client.prepareImport.bind(client), this.callOptions(signal));
  }

  /** Opens `role`'s FinishImport stream (destination, the stop-and-copy). */
  finishImport(
    role: DeviceRole,
    signal?: AbortSignal,
  ): ClientStreamCall<FinishImportRequest, FinishImportResponse> {
    const client = this.clients.get(role)!;
    return new ClientStreamCall(client.finishImport.bind(client), this.callOptions(signal));
  }

  /** Resumes the VM's devices on every service, even when one of them fails (then rethrown). */
  async resume(vm: string, signal?: AbortSignal): Promise<void> {
    await this.onEveryRole(vm, signal, (client, options) =>
      unaryCall(client.resumeDevices.bind(client), { vm }, options),
    );
  }

  /**
   * Destroys the VM's devices on every service that has some, each asked even when another fails
   * (its failure is rethrown after): true if any did.
   */
  async release(vm: string): Promise<boolean> {
    const outcomes = await Promise.allSettled(ROLES.map((role) => this.releaseOn(role, vm)));
    const failed = outcomes.findIndex((outcome) => outcome.status === "rejected");
    if (failed >= 0) throw annotate((outcomes[failed] as PromiseRejectedResult).reason, ROLES[failed]!);
    return outcomes.some((outcome) => outcome.status === "fulfilled" && outcome.value);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }

  private async releaseOn(role: DeviceRole, vm: string): Promise<boolean> {
    const client = this.clients.get(role)!;
    try {
      await unaryCall(client.releaseDevices.bind(client), { vm }, this.callOptions());
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /**
   * Calls every service at once and waits for all; NOT_FOUND answers are left out; the first
   * other failure is rethrown; NOT_FOUND overall if all said so.
   */
  private async onEveryRole<T>(
    vm: string,
    signal: AbortSignal | undefined,
    call: (
      client: DeviceStateServiceClient,
      options: { timeoutMs: number; signal?: AbortSignal },
    ) => Promise<T>,
  ): Promise<Map<DeviceRole, T>> {
    // Concurrently: quiescing every device at once is also what stops them at one moment.
    const outcomes = await Promise.allSettled(
      ROLES.map((role) => call(this.clients.get(role)!, this.callOptions(signal))),
    );
    const answers = new Map<DeviceRole, T>();
    outcomes.forEach((outcome, i) => {
      const role = ROLES[i]!;
      if (outcome.status === "fulfilled") answers.set(role, outcome.value);
      else if (!isNotFound(outcome.reason)) throw annotate(outcome.reason, role);
    });
    if (answers.size === 0) throw noDevices(vm);
    return answers;
  }

  private callOptions(signal?: AbortSignal) {
    return { timeoutMs: this.options.callTimeoutMs, ...(signal ? { signal } : {}) };
  }
}

const isNotFound = (error: unknown) => error instanceof VplaneError && error.code === "NOT_FOUND";

/** A device-state stream out of shape: what `call` of `role` did. */
function streamOutOfShape(role: DeviceRole, call: string, what: string) {
  return new VplaneError({
    code: "INTERNAL",
    reason: "MIGRATION_PROTOCOL_ERROR",
    message: `${role}: ${call} ${what}`,
  });
}

function noDevices(vm: string) {
  return new VplaneError({
    code: "NOT_FOUND",
    reason: "VM_HAS_NO_DEVICES",
    field: "vm",
    message: `VM ${vm} has no devices on this host`,
  });
}

/** Says which service failed, keeping the code and reason a caller acts on. */
function annotate(error: unknown, role: DeviceRole): Error {
  if (!(error instanceof VplaneError)) return error instanceof Error ? error : new Error(String(error));
  return new VplaneError({
    code: error.code,
    reason: error.reason,
    message: `${role}: ${error.message}`,
    errno: error.errno,
    hcallReturnCode: error.hcallReturnCode,
    field: error.field,
    batchIndex: error.batchIndex,
  });
}
