import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import type {
  SmmuEventRecord,
  SeedFaultReport,
  PageRequest as PageRequestMessage,
} from "@vplane/proto/gen/vplane/iommu/v1/fault";
import type {
  Smmu as SmmuMessage,
  SmmuFeatures as SmmuFeaturesMessage,
} from "@vplane/proto/gen/vplane/iommu/v1/smmu";
import { TranslationOutcome, type TranslateResponse } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import { VplaneError } from "@vplane/service-kit";
import {
  DEFAULT_FEATURES,
  encodeEventRecord,
  eventName,
  type PageRequest,
  type SmmuEvent,
  type SmmuFeatures,
  type TranslationResult,
  type UnrecoverableFault,
} from "@vplane/smmuv3";
import type { SmmuEntry } from "./smmu-registry.js";
import { smmuName } from "./smmu-registry.js";

/** A u64 field that must fit a JS number (addresses and sizes below 2^53). */
export function safeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "VALUE_TOO_LARGE",
      message: `${field} must be below 2^53, got ${value}`,
      field,
    });
  }
  return Number(value);
}

/**
 * SmmuFeatures from a create request: unset means every default; set, each zero or empty field
 * takes its default (sid_bits 16, oas_bits 48, all granules), ssid_bits as given.
 */
export function featuresFromMessage(f: SmmuFeaturesMessage | undefined): Partial<SmmuFeatures> {
  if (f === undefined) return {};
  const granules = f.granules.length === 0 ? [4096, 16384, 65536] : f.granules;
  for (const g of granules) {
    if (g !== 4096 && g !== 16384 && g !== 65536) {
      throw new VplaneError({
        code: "INVALID_ARGUMENT",
        reason: "GRANULE_INVALID",
        message: `granules are 4096, 16384 or 65536 bytes, got ${g}`,
        field: "smmu.features.granules",
      });
    }
  }
  return {
    streamIdBits: f.sidBits === 0 ? DEFAULT_FEATURES.streamIdBits : f.sidBits,
    substreamIdBits: f.ssidBits,
    outputAddressBits: f.oasBits === 0 ? DEFAULT_FEATURES.outputAddressBits : f.oasBits,
    granule4K: granules.includes(4096),
    granule16K: granules.includes(16384),
    granule64K: granules.includes(65536),
    rangeInvalidation: f.rangeInvalidation,
    pri: f.pri,
  };
}

export function featuresMessage(f: SmmuFeatures): SmmuFeaturesMessage {
  return {
    sidBits: f.streamIdBits,
    ssidBits: f.substreamIdBits,
    granules: [f.granule4K ? 4096 : 0, f.granule16K ? 16384 : 0, f.granule64K ? 65536 : 0].filter(
      (g) => g !== 0,
    ),
    oasBits: f.outputAddressBits,
    asid16: f.asid16,
    vmid16: f.vmid16,
    rangeInvalidation: f.rangeInvalidation,
    pri: f.pri,
  };
}

export function smmuMessage(entry: SmmuEntry): SmmuMessage {
  const r = entry.record;
  return {
    name: smmuName(r.vm, r.smmuId),
    vm: r.vm,
    smmuId: r.smmuId,
    backend: r.backend === "NATIVE" ? Backend.BACKEND_NATIVE : Backend.BACKEND_EMULATED,
    features: featuresMessage(entry.backend.features), // a NATIVE SMMU's are the host SMMU's (HW_INFO)
    guestMemory: { path: r.guestMemoryPath, sizeBytes: BigInt(r.guestMemoryBytes) },
    vmid: r.vmid,
    createTime: new Date(r.createTime),
    stage2GranuleBytes: 2 ** r.stage2GranuleBits,
    eventQueueDepth: r.eventQueueDepth,
    pageRequestTimeoutMs: r.pageRequestTimeoutMs,
  };
}

export function eventRecordMessage(e: SmmuEvent): SmmuEventRecord {
  return {
    id: e.id,
    idName: eventName(e.id),
    streamId: e.streamId,
    substreamId: e.substreamId,
    read: e.read ?? false,
    stage2: e.stage2 ?? false,
    eventClass: e.eventClass ?? 0,
    ttRead: e.ttRead ?? false,
    inputAddress: e.inputAddress,
    ipa: e.ipa === undefined ? undefined : BigInt(e.ipa),
    fetchAddress: e.fetchAddress === undefined ? undefined : BigInt(e.fetchAddress),
    record: Buffer.from(encodeEventRecord(e)),
  };
}

export function seedFaultMessage(f: UnrecoverableFault): SeedFaultReport {
  return {
    reason: f.reason,
    flags: f.flags,
    pasid: f.pasid,
    perm: f.perm,
    addr: f.addr,
    fetchAddr: f.fetchAddr,
  };
}

export function pageRequestMessage(p: PageRequest): PageRequestMessage {
  return {
    cookie: p.cookie,
    streamId: p.streamId,
    virtualStreamId: p.virtualStreamId,
    substreamId: p.substreamId,
    groupId: p.groupId,
    flags: p.flags,
    perm: p.perm,
    address: p.address,
  };
}

const OUTCOMES = {
  translated: TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED,
  completed: TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED,
  fault: TranslationOutcome.TRANSLATION_OUTCOME_FAULT,
  aborted: TranslationOutcome.TRANSLATION_OUTCOME_ABORTED,
  "page-request": TranslationOutcome.TRANSLATION_OUTCOME_PAGE_REQUEST,
  doorbell: TranslationOutcome.TRANSLATION_OUTCOME_DOORBELL,
} as const;

export function outcomeMessage(outcome: keyof typeof OUTCOMES): TranslationOutcome {
  return OUTCOMES[outcome];
}

export function translateResponse(r: TranslationResult): TranslateResponse {
  const ok = r.outcome === "translated" || r.outcome === "doorbell";
  return {
    outcome: outcomeMessage(r.outcome),
    address: ok ? BigInt(r.address) : 0n,
    mappingSize: ok ? 2n ** BigInt(r.sizeBits) : 0n,
    permission: r.perm,
    iotlbHit: r.hit,
    event: r.event ? eventRecordMessage(r.event) : undefined,
    recorded: r.recorded,
    pageRequest: r.pageRequest ? pageRequestMessage(r.pageRequest) : undefined,
  };
}
