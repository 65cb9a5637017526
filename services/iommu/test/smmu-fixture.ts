import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { Smmu } from "@vplane/proto/gen/vplane/iommu/v1/smmu";
import { Stage2Permission } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import { steWords } from "../src/testing/guest-tables.js";
import type { IommuHarness } from "./iommu-harness.js";

/** A CreateSmmu message with defaults and private RAM of `ramBytes`. */
export function smmuSpec(vm: string, smmuId: string, o: Partial<Smmu> & { ramBytes?: number } = {}): Smmu {
  const { ramBytes, ...rest } = o;
  return {
    name: "",
    vm,
    smmuId,
    backend: Backend.BACKEND_EMULATED,
    features: undefined,
    guestMemory: { path: "", sizeBytes: BigInt(ramBytes ?? 64 * 1024 * 1024) },
    vmid: 0,
    createTime: undefined,
    stage2GranuleBytes: 0,
    eventQueueDepth: 0,
    pageRequestTimeoutMs: 0,
    ...rest,
  };
}

/** Creates an SMMU with stage 2 identity-mapping its first `mapped` bytes; returns its name. */
export async function createSmmu(
  h: IommuHarness,
  vm: string,
  smmuId: string,
  o: Partial<Smmu> & { ramBytes?: number; mapped?: number } = {},
): Promise<string> {
  const { mapped, ...spec } = o;
  const { smmu } = await h.call("createSmmu", { smmu: smmuSpec(vm, smmuId, spec), requestId: "" });
  if (mapped) {
    await h.call("mapStage2", {
      name: smmu!.name,
      mapping: {
        ipa: 0n,
        hostAddress: 0n,
        size: BigInt(mapped),
        permission: Stage2Permission.STAGE2_PERMISSION_READ_WRITE,
      },
      requestId: "",
    });
  }
  return smmu!.name;
}

/** Binds device `streamId` as `virtualStreamId` and installs a guest STE (Config 5 S1, or 4 bypass, 0 abort). */
export async function attachWithSte(
  h: IommuHarness,
  name: string,
  d: {
    streamId: number;
    virtualStreamId: number;
    pageRequests?: boolean;
    config: number;
    contextPtr?: number;
  },
): Promise<void> {
  await h.call("attachDevice", {
    name,
    streamId: d.streamId,
    virtualStreamId: d.virtualStreamId,
    pageRequests: d.pageRequests ?? false,
    requestId: "",
  });
  await h.call("attachPasidTable", {
    name,
    form: {
      $case: "guestSte",
      value: { streamId: d.streamId, ...steWords(d.config, d.contextPtr ?? 0), flags: 0 },
    },
    requestId: "",
  });
}

/** Binds device `streamId` as `virtualStreamId` with an all-zero guest STE: V = 0, every access C_BAD_STE (digest §2.1). */
export async function attachInvalidSte(
  h: IommuHarness,
  name: string,
  streamId: number,
  virtualStreamId = streamId,
): Promise<void> {
  await h.call("attachDevice", { name, streamId, virtualStreamId, pageRequests: false, requestId: "" });
  await h.call("attachPasidTable", {
    name,
    form: { $case: "guestSte", value: { streamId, ste0: 0n, ste1: 0n, flags: 0 } },
    requestId: "",
  });
}

/** Seed ATTACH_PASID_TABLE (digest §1.2) of `name`: config 1 translate (CD table at basePtr), 2 bypass, 3 abort. */
export async function attachSeedTable(
  h: IommuHarness,
  name: string,
  config: number,
  basePtr = 0x8000n,
): Promise<void> {
  await h.call("attachPasidTable", {
    name,
    form: {
      $case: "seed",
      value: { version: 1, format: 1, basePtr, pasidBits: 0, config, smmuv3Version: 1, s1fmt: 0, s1dss: 0 },
    },
    requestId: "",
  });
}
