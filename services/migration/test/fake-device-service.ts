// A device service for the migration tests: DeviceStateService (through the service kit's
// adapter, so chunks are cut and checked as the real services do) over an in-memory map of VMs.
// A VM's state is a base payload plus the changes its "guest" made, which pre-copy moves as they
// come (iteration 0: the base and every change so far; then the changes not yet read; the
// stop-and-copy the rest). Hooks delay or fail any call, and make changes while it migrates.
import type { DeviceSection } from "@vplane/proto/gen/vplane/devicestate/v1/device_state";
import type { ServerWritableStream } from "@grpc/grpc-js";
import {
  VplaneError,
  deviceStateService,
  toStatusObject,
  wallClockUs,
  type ServiceDescription,
  type ServiceRegistration,
} from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";

export type DeviceCall =
  | "quiesce"
  | "export"
  | "import"
  | "resume"
  | "release"
  | "readPreCopy"
  | "preCopyInfo"
  | "stopAndCopy"
  | "prepareImport"
  | "finishImport"
  /** FinishImport's durable write, after its devices resumed. */
  | "finishDurable";

export interface FakeVm {
  payload: Buffer;
  /** What the guest changed since the base payload, in order. */
  changes: string[];
  quiesced: boolean;
  dirtyPages: bigint[];
  guestMemoryPath: string;
}

/** A fake section payload: the base (full listing) or not, and changes. */
interface FakePayload {
  base?: string;
  changes: string[];
}

const encode = (p: FakePayload) => Buffer.from(JSON.stringify(p));
const decode = (payload: Uint8Array) => JSON.parse(Buffer.from(payload).toString()) as FakePayload;

export class FakeDevices {
  readonly vms = new Map<string, FakeVm>();
  /** Destination side: what pre-copy built so far, per VM (not yet the VM's). */
  readonly prepared = new Map<string, FakeVm>();
  readonly calls: DeviceCall[] = [];
  /** A call named here fails with this error (once). */
  readonly failures = new Map<DeviceCall, VplaneError>();
  /** StopAndCopy sends all its chunks, then ends with this error as its status (once). */
  stopAndCopyStatus: VplaneError | undefined;
  /** A call named here waits for this promise first. */
  readonly holds = new Map<DeviceCall, Promise<void>>();
  /** Runs after each ReadPreCopy (a guest changing its devices while it migrates). */
  afterRead: ((vm: FakeVm) => void) | undefined;
  /** Changes read by pre-copy so far, per VM (source side). */
  private readonly read = new Map<string, number>();
  service!: ServiceUnderTest;

  constructor(readonly kind: "xive" | "smmuv3") {}

  async start(): Promise<this> {
    this.service = await startServiceForTests(this.description());
    return this;
  }

  private async enter(call: DeviceCall): Promise<void> {
    this.calls.push(call);
    await this.holds.get(call);
    const failure = this.failures.get(call);
    if (failure) {
      this.failures.delete(call);
      throw failure;
    }
  }

  private notFound(vm: string): VplaneError {
    return new VplaneError({
      code: "NOT_FOUND",
      reason: "VM_NOT_FOUND",
      message: `no ${this.kind} devices of ${vm}`,
    });
  }

  private require(vm: string): FakeVm {
    const state = this.vms.get(vm);
    if (!state) throw this.notFound(vm);
    return state;
  }

  private refuseExisting(vm: string): void {
    if (this.vms.has(vm))
      throw new VplaneError({ code: "ALREADY_EXISTS", reason: "VM_EXISTS", message: `${vm} exists` });
  }

  private device(vm: string): string {
    return this.kind === "xive" ? `vms/${vm}/controller` : `vms/${vm}/smmus/smmu0`;
  }

  private section(vm: string, payload: FakePayload): DeviceSection {
    return { kind: this.kind, device: this.device(vm), formatVersion: 1, payload: encode(payload) };
  }

  /** Applies sections to `target` (a full listing replaces it). */
  private apply(target: FakeVm, sections: readonly DeviceSection[]) {
    for (const section of sections) {
      const { base, changes } = decode(section.payload);
      if (base !== undefined) {
        target.payload = Buffer.from(base);
        target.changes = [];
      }
      target.changes.push(...changes);
    }
  }

  private description(): ServiceDescription<Record<string, never>> {
    return {
      name: `fake-${this.kind}`,
      envPrefix: "FAKE",
      defaultPort: 0,
      options: {},
      start: ({ handlers }) =>
        Promise.resolve({
          services: [
            this.withStopAndCopyStatus(
              deviceStateService(handlers, {
                quiesceDevices: async ({ vm }) => {
                  await this.enter("quiesce");
                  const state = this.require(vm);
                  state.quiesced = true;
                  return { dirtyPages: state.dirtyPages, pageSize: 4096n };
                },
                exportDeviceState: async ({ vm }) => {
                  await this.enter("export");
                  const state = this.require(vm);
                  if (!state.quiesced) {
                    throw new VplaneError({
                      code: "FAILED_PRECONDITION",
                      reason: "NOT_QUIESCED",
                      message: "quiesce first",
                    });
                  }
                  return {
                    sections: [this.section(vm, { base: state.payload.toString(), changes: state.changes })],
                  };
                },
                importDeviceState: async ({ vm, sections, guestMemory }) => {
                  await this.enter("import");
                  this.refuseExisting(vm);
                  const state: FakeVm = {
                    payload: Buffer.alloc(0),
                    changes: [],
                    quiesced: true,
                    dirtyPages: [],
                    guestMemoryPath: guestMemory?.path ?? "",
                  };
                  this.apply(state, sections);
                  this.vms.set(vm, state);
                  return { devices: [this.device(vm)] };
                },
                resumeDevices: async ({ vm }) => {
                  await this.enter("resume");
                  this.require(vm).quiesced = false;
                  this.read.delete(vm);
                  return {};
                },
                releaseDevices: async ({ vm }) => {
                  await this.enter("release");
                  const had = this.vms.delete(vm) || this.prepared.delete(vm);
                  this.prepared.delete(vm);
                  this.read.delete(vm);
                  if (!had) throw this.notFound(vm);
                  return { devices: [this.device(vm)] };
                },
                readPreCopy: async (vm, iteration) => {
                  await this.enter("readPreCopy");
                  const state = this.require(vm);
                  const from = iteration === 0 ? 0 : (this.read.get(vm) ?? 0);
                  this.read.set(vm, state.changes.length);
                  const changes = state.changes.slice(from);
                  this.afterRead?.(state);
                  return [
                    this.section(
                      vm,
                      iteration === 0 ? { base: state.payload.toString(), changes } : { changes },
                    ),
                  ];
                },
                preCopyInfo: async (vm) => {
                  await this.enter("preCopyInfo");
                  const state = this.require(vm);
                  const unread = state.changes.slice(this.read.get(vm) ?? 0);
                  return { initialBytes: 0n, dirtyBytes: BigInt(unread.join("").length) };
                },
                stopAndCopy: async (vm) => {
                  await this.enter("stopAndCopy");
                  const state = this.require(vm);
                  state.quiesced = true;
                  const from = this.read.get(vm);
                  this.read.delete(vm);
                  const payload =
                    from === undefined
                      ? { base: state.payload.toString(), changes: state.changes }
                      : { changes: state.changes.slice(from) };
                  return {
                    sections: [this.section(vm, payload)],
                    dirtyPages: state.dirtyPages,
                    pageSize: 4096n,
                    pausedAtUs: wallClockUs(),
                  };
                },
                prepareImport: async ({ vm, guestMemory, sections }, iteration) => {
                  await this.enter("prepareImport");
                  this.refuseExisting(vm);
                  if (iteration === 0) {
                    this.prepared.set(vm, {
                      payload: Buffer.alloc(0),
                      changes: [],
                      quiesced: true,
                      dirtyPages: [],
                      guestMemoryPath: guestMemory?.path ?? "",
                    });
                  }
                  const target = this.prepared.get(vm);
                  if (!target)
                    throw new VplaneError({
                      code: "FAILED_PRECONDITION",
                      reason: "NOT_PREPARED",
                      message: `${vm} not prepared`,
                    });
                  this.apply(target, sections);
                  return [this.device(vm)];
                },
                finishImport: async ({ vm, guestMemory, sections }, resume) => {
                  await this.enter("finishImport");
                  const target =
                    this.prepared.get(vm) ??
                    ({
                      payload: Buffer.alloc(0),
                      changes: [],
                      quiesced: true,
                      dirtyPages: [],
                      guestMemoryPath: guestMemory?.path ?? "",
                    } satisfies FakeVm);
                  this.apply(target, sections);
                  this.prepared.delete(vm);
                  target.quiesced = !resume;
                  this.vms.set(vm, target);
                  const resumedAtUs = resume ? wallClockUs() : 0n;
                  return { devices: [this.device(vm)], resumedAtUs, durable: this.enter("finishDurable") };
                },
              }),
            ),
          ],
        }),
    };
  }

  /** The registration with StopAndCopy ending on stopAndCopyStatus when one is set. */
  private withStopAndCopyStatus(registration: ServiceRegistration): ServiceRegistration {
    const implementation = registration.implementation as Record<string, unknown>;
    const stopAndCopy = implementation.stopAndCopy as (call: ServerWritableStream<unknown, unknown>) => void;
    implementation.stopAndCopy = (call: ServerWritableStream<unknown, unknown>) => {
      const status = this.stopAndCopyStatus;
      this.stopAndCopyStatus = undefined;
      if (status) {
        // The handler ends the stream after its last chunk: it ends with the status instead
        // (grpc-js ends an errored stream through end(), the original one).
        const end = call.end.bind(call);
        Object.assign(call, {
          end: () => {
            Object.assign(call, { end });
            call.emit("error", toStatusObject(status));
          },
        });
      }
      stopAndCopy(call);
    };
    return registration;
  }
}
