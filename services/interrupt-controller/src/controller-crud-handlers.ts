import type {
  CreateControllerRequest,
  CreateControllerResponse,
  DeleteControllerRequest,
  DeleteControllerResponse,
  GetControllerRequest,
  GetControllerResponse,
  ListControllersRequest,
  ListControllersResponse,
} from "@vplane/proto/gen/vplane/interrupt/v1/controller_crud";
import { IdempotentDeletes, backendKindOf, requiredField } from "@vplane/service-kit";
import { PseriesIrq } from "@vplane/xive";
import type { ControllerRecord } from "./controller-config-store.js";
import { checkVmId, type ControllerRegistry } from "./controller-registry.js";
import { checkGuestMemory } from "./guest-memory-binding.js";
import { controllerMessage, controllerModeOf } from "./proto-mapping.js";
import { LIMITS } from "./service-limits.js";

/** CreateController / DeleteController / GetController / ListControllers. */
export function controllerCrudHandlers(registry: ControllerRegistry, dataDir: string) {
  const deletes = new IdempotentDeletes(); // a retried delete succeeds
  return {
    createController: async (request: CreateControllerRequest): Promise<CreateControllerResponse> => {
      const c = requiredField(request.controller, "controller");
      checkVmId(c.vm);
      const memory = checkGuestMemory(c.guestMemory?.path ?? "", c.guestMemory?.sizeBytes ?? 0n, dataDir);
      const record: ControllerRecord = {
        vm: c.vm,
        mode: controllerModeOf(c.mode),
        backend: backendKindOf(c.backend, "controller.backend"),
        nrServers: c.nrServers === 0 ? LIMITS.maxServers : c.nrServers,
        nrIrqs: c.nrIrqs === undefined || c.nrIrqs === 0 ? PseriesIrq.DEFAULT_NR_IRQS : c.nrIrqs,
        guestMemoryPath: c.guestMemory?.path ?? "",
        guestMemoryBytes: memory.sizeBytes,
        createTime: new Date().toISOString(),
        createRequestId: request.requestId,
      };
      return { controller: controllerMessage(await registry.create(record)) };
    },

    deleteController: async (request: DeleteControllerRequest): Promise<DeleteControllerResponse> => {
      await deletes.run(request.requestId, request.name, () => registry.delete(request.name));
      return {};
    },

    getController: (request: GetControllerRequest): GetControllerResponse => {
      return { controller: controllerMessage(registry.require(request.name)) };
    },

    listControllers: (request: ListControllersRequest): ListControllersResponse => {
      const page = registry.list(request);
      return { controllers: page.items.map(controllerMessage), nextPageToken: page.nextPageToken };
    },
  };
}
