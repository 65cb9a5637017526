// This host's device services, seen through their DeviceStateService: the interrupt controller
// (sections "xive", "xics") and the IOMMU ("smmuv3"). A VM may have devices on either or both;
// a service that answers NOT_FOUND simply holds none of that VM's devices.
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { DeviceStateServiceClient } from "@vplane/proto/gen/vplane/devicestate/v1/service";
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import type { GuestMemory } from "@vplane/proto/gen/vplane/common/v1/guest_memory";
import {
  VplaneError,
  clientChannelOptions,
  clientCredentials,
  unaryCall,
  type TlsFiles,
} from "@vplane/service-kit";

export type DeviceRole = "interrupt-controller" | "iommu";

/** Which service imports a section kind; sections are exported in ROLES order. */
const ROLE_OF_KIND: Record<string, DeviceRole> = {
  xive: "interrupt-controller",
  xics: "interrupt-controller",
  smmuv3: "iommu",
};
const ROLES: readonly DeviceRole[] = ["interrupt-controller", "iommu"];

/** Guest pages the devices wrote at quiesce: addresses (ascending) and the page size in bytes. */
export interface DirtyPages {
  pages: bigint[];
  pageSize: bigint;
}

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
    let pages: bigint[] = [];
    let pageSize = 0n;
    for (const answer of answers.values()) {
      pages = mergeAscending(pages, answer.dirtyPages);
      if (answer.pageSize > pageSize) pageSize = answer.pageSize;
    }
    return { pages, pageSize };
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

  /** Resumes the VM's devices on every service, even when one of them fails (then rethrown). */
  async resume(vm: string, signal?: AbortSignal): Promise<void> {
    await this.onEveryRole(vm, signal, (client, options) =>
      unaryCall(client.resumeDevices.bind(client), { vm }, options),
    );
  }

  /** Destroys the VM's devices on every service that has some; true if any did. */
  async release(vm: string): Promise<boolean> {
    let any = false;
    for (const role of ROLES) any = (await this.releaseOn(role, vm)) || any;
    return any;
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

function noDevices(vm: string) {
  return new VplaneError({
    code: "NOT_FOUND",
    reason: "VM_HAS_NO_DEVICES",
    field: "vm",
    message: `VM ${vm} has no devices on this host`,
  });
}

/** Two ascending lists as one, without duplicates (each service reports its pages ascending). */
function mergeAscending(a: readonly bigint[], b: readonly bigint[]): bigint[] {
  if (a.length === 0) return [...b];
  if (b.length === 0) return [...a];
  const out: bigint[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if (out.length === 0 || out[out.length - 1]! !== next) out.push(next);
  }
  return out;
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
