import type {
  CreateSmmuRequest,
  CreateSmmuResponse,
  DeleteSmmuRequest,
  DeleteSmmuResponse,
  GetSmmuRequest,
  GetSmmuResponse,
  ListSmmusRequest,
  ListSmmusResponse,
} from "@vplane/proto/gen/vplane/iommu/v1/smmu_crud";
import { VplaneError, IdempotentDeletes, backendKindOf, requiredField } from "@vplane/service-kit";
import { resolveFeatures } from "@vplane/smmuv3";
import { guestMemorySpec } from "./guest-memory-binding.js";
import { featuresFromMessage, smmuMessage } from "./proto-mapping.js";
import { checkResourceId, type SmmuRegistry } from "./smmu-registry.js";
import { LIMITS } from "./service-limits.js";

const GRANULE_BITS = new Map<number, 12 | 14 | 16>([
  [0, 12],
  [4096, 12],
  [16384, 14],
  [65536, 16],
]);

function outOfRange(field: string, message: string): VplaneError {
  return new VplaneError({ code: "INVALID_ARGUMENT", reason: "VALUE_OUT_OF_RANGE", message, field });
}

/** CreateSmmu / DeleteSmmu / GetSmmu / ListSmmus. */
export function smmuCrudHandlers(registry: SmmuRegistry, dataDir: string) {
  const deletes = new IdempotentDeletes(); // a retried delete succeeds
  return {
    createSmmu: async (request: CreateSmmuRequest): Promise<CreateSmmuResponse> => {
      const s = requiredField(request.smmu, "smmu");
      checkResourceId(s.vm, "smmu.vm");
      checkResourceId(s.smmuId, "smmu.smmu_id");
      const backend = backendKindOf(s.backend, "smmu.backend");
      const features = resolveFeatures(featuresFromMessage(s.features));
      const stage2GranuleBits = GRANULE_BITS.get(s.stage2GranuleBytes);
      if (stage2GranuleBits === undefined) {
        throw outOfRange(
          "smmu.stage2_granule_bytes",
          `stage-2 granule must be 4096, 16384 or 65536, got ${s.stage2GranuleBytes}`,
        );
      }
      if (s.eventQueueDepth > LIMITS.maxEventQueueDepth) {
        throw outOfRange(
          "smmu.event_queue_depth",
          `event queue depth must be at most ${LIMITS.maxEventQueueDepth}`,
        );
      }
      if (s.pageRequestTimeoutMs > LIMITS.maxPageRequestTimeoutMs) {
        throw outOfRange(
          "smmu.page_request_timeout_ms",
          `page request timeout must be at most ${LIMITS.maxPageRequestTimeoutMs} ms`,
        );
      }
      const memory = guestMemorySpec(s.guestMemory?.path ?? "", s.guestMemory?.sizeBytes ?? 0n, dataDir);
      const entry = await registry.create({
        vm: s.vm,
        smmuId: s.smmuId,
        backend,
        features,
        guestMemoryPath: s.guestMemory?.path ?? "",
        guestMemoryBytes: memory.sizeBytes,
        stage2GranuleBits,
        eventQueueDepth: s.eventQueueDepth || 1024,
        pageRequestTimeoutMs: s.pageRequestTimeoutMs || 10_000,
        createTime: new Date().toISOString(),
        createRequestId: request.requestId,
      });
      return { smmu: smmuMessage(entry) };
    },

    deleteSmmu: async (request: DeleteSmmuRequest): Promise<DeleteSmmuResponse> => {
      await deletes.run(request.requestId, request.name, () => registry.delete(request.name));
      return {};
    },

    getSmmu: (request: GetSmmuRequest): GetSmmuResponse => ({
      smmu: smmuMessage(registry.require(request.name)),
    }),

    listSmmus: (request: ListSmmusRequest): ListSmmusResponse => {
      let under = "";
      if (request.parent !== "") {
        const vm = /^vms\/([a-z][a-z0-9-]{0,62})$/.exec(request.parent)?.[1];
        if (vm === undefined) {
          throw new VplaneError({
            code: "INVALID_ARGUMENT",
            reason: "PARENT_INVALID",
            message: `parent is "vms/{vm}" or empty, got '${request.parent}'`,
            field: "parent",
          });
        }
        under = `vms/${vm}/smmus/`;
      }
      const page = registry.list(request, under);
      return { smmus: page.items.map(smmuMessage), nextPageToken: page.nextPageToken };
    },
  };
}
