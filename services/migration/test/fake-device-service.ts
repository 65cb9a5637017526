// A device service for the migration tests: DeviceStateService over an in-memory map of VMs,
// with a payload per VM, the quiesced flag, and hooks to delay or fail any call.
import {
  DeviceStateServiceService,
  type DeviceStateServiceServer,
} from "@vplane/proto/gen/vplane/devicestate/v1/service";
import { VplaneError, type ServiceDescription } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";

export type DeviceCall = "quiesce" | "export" | "import" | "resume" | "release";

export interface FakeVm {
  payload: Buffer;
  quiesced: boolean;
  dirtyPages: bigint[];
  guestMemoryPath: string;
}

export class FakeDevices {
  readonly vms = new Map<string, FakeVm>();
  readonly calls: DeviceCall[] = [];
  /** A call named here fails with this error (once). */
  readonly failures = new Map<DeviceCall, VplaneError>();
  /** A call named here waits for this promise first. */
  readonly holds = new Map<DeviceCall, Promise<void>>();
  service!: ServiceUnderTest;

  constructor(readonly kind: "xive" | "smmuv3") {}

  async start(): Promise<this> {
    this.service = await startServiceForTests(this.description());
    return this;
  }

  private async enter(call: DeviceCall, vm: string): Promise<FakeVm | undefined> {
    this.calls.push(call);
    await this.holds.get(call);
    const failure = this.failures.get(call);
    if (failure) {
      this.failures.delete(call);
      throw failure;
    }
    return this.vms.get(vm);
  }

  private description(): ServiceDescription<Record<string, never>> {
    const notFound = (vm: string) =>
      new VplaneError({
        code: "NOT_FOUND",
        reason: "VM_NOT_FOUND",
        message: `no ${this.kind} devices of ${vm}`,
      });
    const device = (vm: string) => (this.kind === "xive" ? `vms/${vm}/controller` : `vms/${vm}/smmus/smmu0`);
    return {
      name: `fake-${this.kind}`,
      envPrefix: "FAKE",
      defaultPort: 0,
      options: {},
      start: ({ handlers }) =>
        Promise.resolve({
          services: [
            {
              definition: DeviceStateServiceService,
              implementation: {
                quiesceDevices: handlers.unary(async ({ vm }) => {
                  const state = (await this.enter("quiesce", vm)) ?? fail(notFound(vm));
                  state.quiesced = true;
                  return { dirtyPages: state.dirtyPages, pageSize: 4096n };
                }),
                exportDeviceState: handlers.unary(async ({ vm }) => {
                  const state = (await this.enter("export", vm)) ?? fail(notFound(vm));
                  if (!state.quiesced) {
                    throw new VplaneError({
                      code: "FAILED_PRECONDITION",
                      reason: "NOT_QUIESCED",
                      message: "quiesce first",
                    });
                  }
                  return {
                    sections: [
                      { kind: this.kind, device: device(vm), formatVersion: 1, payload: state.payload },
                    ],
                  };
                }),
                importDeviceState: handlers.unary(async ({ vm, sections, guestMemory }) => {
                  if (await this.enter("import", vm)) {
                    throw new VplaneError({
                      code: "ALREADY_EXISTS",
                      reason: "VM_EXISTS",
                      message: `${vm} exists`,
                    });
                  }
                  const section = sections[0]!;
                  this.vms.set(vm, {
                    payload: Buffer.from(section.payload),
                    quiesced: true,
                    dirtyPages: [],
                    guestMemoryPath: guestMemory?.path ?? "",
                  });
                  return { devices: [section.device] };
                }),
                resumeDevices: handlers.unary(async ({ vm }) => {
                  const state = (await this.enter("resume", vm)) ?? fail(notFound(vm));
                  state.quiesced = false;
                  return {};
                }),
                releaseDevices: handlers.unary(async ({ vm }) => {
                  if (!(await this.enter("release", vm))) throw notFound(vm);
                  this.vms.delete(vm);
                  return { devices: [device(vm)] };
                }),
              } satisfies DeviceStateServiceServer,
            },
          ],
        }),
    };
  }
}

function fail(error: Error): never {
  throw error;
}
