// In-process stand-ins for one host's interrupt-controller, iommu and migration services, all
// three on one gRPC server started with the service kit: they keep controllers and SMMUs in
// maps, honour request_id like the real services, and fail a chosen RPC on demand.
import { Backend, type Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { Controller } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import {
  InterruptControllerServiceService,
  type InterruptControllerServiceServer,
} from "@vplane/proto/gen/vplane/interrupt/v1/service";
import type { Smmu } from "@vplane/proto/gen/vplane/iommu/v1/smmu";
import { IommuServiceService, type IommuServiceServer } from "@vplane/proto/gen/vplane/iommu/v1/service";
import {
  MigrationServiceService,
  type MigrationServiceServer,
} from "@vplane/proto/gen/vplane/migration/v1/service";
import { buildCapabilities, VplaneError, type ServiceDescription } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";

export interface InjectedFailure {
  error: VplaneError;
  /** Fail only when this predicate holds (e.g. for one SMMU); default: always. */
  when?: (request: unknown) => boolean;
  /** Milliseconds to wait before answering (failures and successes alike). */
  delayMs?: number;
}

export class FakeHost {
  readonly controllers = new Map<string, Controller>();
  readonly smmus = new Map<string, Smmu>();
  /** SMMU name → physical StreamID → virtual StreamID. */
  readonly devices = new Map<string, Map<number, number>>();
  /** Method name (e.g. "CreateSmmu") → failure to answer with. */
  readonly failures = new Map<string, InjectedFailure>();
  /**
   * Method name → a promise the call waits for before doing anything: a test kills the call's
   * caller meanwhile, then settles it, and the host finishes a call whose caller is gone.
   */
  readonly holds = new Map<string, Promise<unknown>>();
  /** Milliseconds every mutating call waits, to let tests cancel in between. */
  delayMs = 0;
  /** Every call, "Method name-or-vm". */
  readonly calls: string[] = [];
  nativeInterrupt = false;
  /** The interrupt-controller's max_controllers limit it reports (a host agent declares it). */
  maxControllers = 1024;
  /** The iommu's max_smmus limit it reports (a host agent declares it). */
  maxSmmus = 1024;
  private readonly seenRequestIds = new Map<string, unknown>();
  private service!: ServiceUnderTest;

  get address(): string {
    return this.service.address;
  }

  get addresses() {
    return { interruptController: this.address, iommu: this.address, migration: this.address };
  }

  static async start(): Promise<FakeHost> {
    const host = new FakeHost();
    host.service = await startServiceForTests(host.description());
    return host;
  }

  async stop(): Promise<void> {
    await this.service.stop(100);
  }

  /**
   * Stops the services and starts them again on the same address, as a host's service process
   * restarting does (its clients' connections break); what it holds stays (a real one restores
   * it from its database).
   */
  async restart(): Promise<void> {
    const address = this.address;
    await this.service.stop(100);
    this.service = await startServiceForTests(this.description(), { VPLANE_FAKE_HOST_ADDR: address });
  }

  private async gate(method: string, request: unknown, label: string): Promise<void> {
    this.calls.push(`${method} ${label}`);
    await this.holds.get(method);
    const failure = this.failures.get(method);
    const delay = failure?.delayMs ?? this.delayMs;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (failure && (!failure.when || failure.when(request))) throw failure.error;
  }

  private capabilities(service: string, native: boolean): Capabilities {
    return buildCapabilities({
      service,
      limits:
        service === "interrupt-controller"
          ? { max_controllers: BigInt(this.maxControllers) }
          : service === "iommu"
            ? { max_smmus: BigInt(this.maxSmmus) }
            : {},
      native: native
        ? { backend: Backend.BACKEND_NATIVE, available: true, unavailableReason: "", unavailableCode: "" }
        : {
            backend: Backend.BACKEND_NATIVE,
            available: false,
            unavailableCode: "KVM_NOT_PRESENT",
            unavailableReason: "/dev/kvm does not exist",
          },
    });
  }

  private once<T>(requestId: string, run: () => T): T {
    if (requestId && this.seenRequestIds.has(requestId)) return this.seenRequestIds.get(requestId) as T;
    const result = run();
    if (requestId) this.seenRequestIds.set(requestId, result);
    return result;
  }

  private description(): ServiceDescription<Record<string, never>> {
    return {
      name: "fake-host",
      envPrefix: "FAKE_HOST",
      defaultPort: 0,
      options: {},
      start: ({ handlers }) =>
        Promise.resolve({
          services: [
            {
              definition: InterruptControllerServiceService,
              implementation: <InterruptControllerServiceServer>{
                getCapabilities: handlers.unary(async (request) => {
                  await this.gate("GetCapabilities", request, "interrupt-controller");
                  return { capabilities: this.capabilities("interrupt-controller", this.nativeInterrupt) };
                }),
                createController: handlers.unary(async (request) => {
                  const vm = request.controller?.vm ?? "";
                  await this.gate("CreateController", request, vm);
                  return this.once(request.requestId, () => {
                    const name = `vms/${vm}/controller`;
                    if (this.controllers.has(name)) {
                      throw new VplaneError({
                        code: "ALREADY_EXISTS",
                        reason: "CONTROLLER_EXISTS",
                        message: name,
                      });
                    }
                    const controller = { ...request.controller!, name };
                    this.controllers.set(name, controller);
                    return { controller };
                  });
                }),
                deleteController: handlers.unary(async (request) => {
                  await this.gate("DeleteController", request, request.name);
                  if (!this.controllers.delete(request.name)) {
                    throw new VplaneError({
                      code: "NOT_FOUND",
                      reason: "CONTROLLER_NOT_FOUND",
                      message: request.name,
                    });
                  }
                  return {};
                }),
                getController: handlers.unary(async (request) => {
                  await this.gate("GetController", request, request.name);
                  const controller = this.controllers.get(request.name);
                  if (!controller) {
                    throw new VplaneError({
                      code: "NOT_FOUND",
                      reason: "CONTROLLER_NOT_FOUND",
                      message: request.name,
                    });
                  }
                  return { controller };
                }),
                listControllers: handlers.unary(() => ({
                  controllers: [...this.controllers.values()],
                  nextPageToken: "",
                })),
              },
            },
            {
              definition: IommuServiceService,
              implementation: <IommuServiceServer>{
                getCapabilities: handlers.unary(async (request) => {
                  await this.gate("GetCapabilities", request, "iommu");
                  return { capabilities: this.capabilities("iommu", false) };
                }),
                createSmmu: handlers.unary(async (request) => {
                  const name = `vms/${request.smmu?.vm}/smmus/${request.smmu?.smmuId}`;
                  await this.gate("CreateSmmu", request, name);
                  return this.once(request.requestId, () => {
                    if (this.smmus.has(name)) {
                      throw new VplaneError({ code: "ALREADY_EXISTS", reason: "SMMU_EXISTS", message: name });
                    }
                    const smmu = { ...request.smmu!, name, vmid: this.smmus.size + 1 };
                    this.smmus.set(name, smmu);
                    return { smmu };
                  });
                }),
                attachDevice: handlers.unary(async (request) => {
                  await this.gate("AttachDevice", request, `${request.name} ${request.streamId}`);
                  if (!this.smmus.has(request.name)) {
                    throw new VplaneError({
                      code: "NOT_FOUND",
                      reason: "SMMU_NOT_FOUND",
                      message: request.name,
                    });
                  }
                  const devices = this.devices.get(request.name) ?? new Map<number, number>();
                  devices.set(request.streamId, request.virtualStreamId);
                  this.devices.set(request.name, devices);
                  return {
                    device: {
                      streamId: request.streamId,
                      virtualStreamId: request.virtualStreamId,
                      pageRequests: request.pageRequests,
                      guestSte: undefined,
                    },
                  };
                }),
                deleteSmmu: handlers.unary(async (request) => {
                  await this.gate("DeleteSmmu", request, request.name);
                  this.devices.delete(request.name);
                  if (!this.smmus.delete(request.name)) {
                    throw new VplaneError({
                      code: "NOT_FOUND",
                      reason: "SMMU_NOT_FOUND",
                      message: request.name,
                    });
                  }
                  return {};
                }),
                getSmmu: handlers.unary((request) => {
                  const smmu = this.smmus.get(request.name);
                  if (!smmu)
                    throw new VplaneError({
                      code: "NOT_FOUND",
                      reason: "SMMU_NOT_FOUND",
                      message: request.name,
                    });
                  return { smmu };
                }),
                listSmmus: handlers.unary(() => ({ smmus: [...this.smmus.values()], nextPageToken: "" })),
              },
            },
            {
              definition: MigrationServiceService,
              implementation: <MigrationServiceServer>{
                getCapabilities: handlers.unary(() => ({
                  capabilities: this.capabilities("migration", false),
                })),
              },
            },
          ],
        }),
    };
  }
}
