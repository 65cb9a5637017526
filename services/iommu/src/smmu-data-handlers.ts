import type {
  RespondPageRequestRequest,
  RespondPageRequestResponse,
  StreamEventBatchesRequest,
  StreamEventBatchesResponse,
  StreamEventsRequest,
  StreamEventsResponse,
} from "@vplane/proto/gen/vplane/iommu/v1/fault";
import type {
  DmaReadRequest,
  DmaReadResponse,
  DmaWriteRequest,
  DmaWriteResponse,
  DumpSmmuRequest,
  DumpSmmuResponse,
  TranslateRequest,
  TranslateResponse,
} from "@vplane/proto/gen/vplane/iommu/v1/translation";
import type { TranslationResult } from "@vplane/smmuv3";
import { VplaneError, type CallContext, type EventStreamMetrics } from "@vplane/service-kit";
import {
  eventRecordMessage,
  outcomeMessage,
  pageRequestMessage,
  seedFaultMessage,
  translateResponse,
} from "./proto-mapping.js";
import type { LogRead } from "./event-log.js";
import type { IommuMetrics } from "./iommu-metrics.js";
import type { DmaOutcome } from "./smmu-backend.js";
import type { SmmuRegistry } from "./smmu-registry.js";
import { LIMITS } from "./service-limits.js";

function checkLength(length: number, field: string): void {
  if (length < 1 || length > LIMITS.maxDmaBytes) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "DMA_LENGTH_INVALID",
      message: `a DMA moves 1 to ${LIMITS.maxDmaBytes} bytes, got ${length}`,
      field,
    });
  }
}

function dmaFields(r: DmaOutcome) {
  return {
    outcome: outcomeMessage(r.outcome),
    stoppedAt: r.translation && r.outcome !== "completed" ? translateResponse(r.translation) : undefined,
    pageResponseCode: r.pageResponseCode,
    pageRequestTimedOut: r.pageRequestTimedOut,
  };
}

/** One stream message for a log read. */
function streamMessage(read: LogRead): StreamEventsResponse {
  switch (read.kind) {
    case "event": {
      const q = read.queued;
      return {
        sequence: read.sequence,
        kind: {
          $case: "event",
          value: {
            record: eventRecordMessage(q.event),
            veventqSequence: q.sequence,
            forwarded: q.forwarded,
            seedFault: q.seedFault ? seedFaultMessage(q.seedFault) : undefined,
          },
        },
      };
    }
    case "page-request":
      return {
        sequence: read.sequence,
        kind: { $case: "pageRequest", value: pageRequestMessage(read.request) },
      };
    case "queue-overflow":
      return { sequence: read.sequence, kind: { $case: "lost", value: { count: 0n, queueOverflow: true } } };
    case "missed":
      return {
        sequence: read.sequence,
        kind: { $case: "lost", value: { count: read.count, queueOverflow: false } },
      };
  }
}

/** Translate, DMA, page responses, the event stream and the dump. */
export function smmuDataHandlers(registry: SmmuRegistry, metrics: IommuMetrics) {
  const translated = (result: TranslationResult) => metrics.translated(result);
  /** A DmaRead (`{ read: length }`) or DmaWrite (`{ write: data }`) of 1 to maxDmaBytes bytes, counted. */
  const dma = async (
    request: DmaReadRequest | DmaWriteRequest,
    access: { read: number } | { write: Uint8Array },
    signal: AbortSignal,
  ): Promise<DmaOutcome> => {
    const read = "read" in access;
    const e = registry.requireLive(request.name, read ? "DmaRead" : "DmaWrite");
    checkLength(read ? access.read : access.write.length, read ? "length" : "data");
    const { streamId, substreamId, iova } = request;
    const r = await e.backend.dma(streamId, substreamId, iova, access, signal, translated);
    metrics.dma(read ? "read" : "write", r);
    return r;
  };
  return {
    translate: (request: TranslateRequest): TranslateResponse => {
      const e = registry.requireLive(request.name, "Translate");
      const result = e.backend.translate(request.streamId, request.substreamId, request.iova, request.write);
      translated(result);
      return translateResponse(result);
    },

    dmaRead: async (request: DmaReadRequest, context: CallContext): Promise<DmaReadResponse> => {
      const r = await dma(request, { read: request.length }, context.signal);
      return { ...dmaFields(r), data: Buffer.from(r.data ?? new Uint8Array(0)) };
    },

    dmaWrite: async (request: DmaWriteRequest, context: CallContext): Promise<DmaWriteResponse> => {
      const r = await dma(request, { write: request.data }, context.signal);
      return {
        ...dmaFields(r),
        msiWrites: r.msiWrites.map((w) => ({ doorbell: BigInt(w.address), data: Buffer.from(w.data) })),
      };
    },

    respondPageRequest: (request: RespondPageRequestRequest): Promise<RespondPageRequestResponse> => {
      const e = registry.requireLive(request.name, "RespondPageRequest");
      // The page request's answer is runtime state: the ledger keeps this call's answer in memory.
      return registry.mutate(e, request, "RespondPageRequest", () => {
        e.backend.respondPageRequest(request.cookie, request.code);
        return { answer: {} };
      });
    },

    dumpSmmu: (request: DumpSmmuRequest): DumpSmmuResponse => {
      const e = registry.require(request.name);
      const text = JSON.stringify(
        { name: request.name, backend: e.backend.kind, ...e.backend.dump() },
        (_key, value: unknown) => (typeof value === "bigint" ? `0x${value.toString(16)}` : value),
        2,
      );
      return { text };
    },

    /**
     * StreamEvents: the SMMU's fault events and page requests from `from_sequence` (or from the
     * next one), each with its sequence; a LostEvents message says how many this stream cannot
     * deliver (older than the buffer, or it fell behind) or that the SMMU's own queue overflowed.
     * Ends when the caller cancels or the SMMU is deleted.
     */
    streamEvents: (
      request: StreamEventsRequest,
      send: (message: StreamEventsResponse) => Promise<void>,
      context: CallContext,
    ): Promise<void> =>
      followLog(registry, metrics.eventStream, request.name, request.fromSequence, 1, context, (m) =>
        send(m[0]!),
      ),

    /** StreamEventBatches: the same messages, as many as are available (up to max_batch) per batch. */
    streamEventBatches: async (
      request: StreamEventBatchesRequest,
      send: (message: StreamEventBatchesResponse) => Promise<void>,
      context: CallContext,
    ): Promise<void> => {
      const max = request.maxBatch === 0 ? 512 : request.maxBatch;
      if (max > 4096) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "VALUE_OUT_OF_RANGE",
          message: "max_batch must be at most 4096",
          field: "max_batch",
        });
      }
      return followLog(
        registry,
        metrics.eventStream,
        request.name,
        request.fromSequence,
        max,
        context,
        (messages) => send({ messages }),
      );
    },
  };
}

/**
 * Follows an SMMU's event log for one subscriber from `from` (or the next message), handing
 * `deliver` up to `max` messages at a time, until the caller cancels or the SMMU goes away;
 * `streamMetrics` sees the losses and the backlog left after each delivery.
 */
async function followLog(
  registry: SmmuRegistry,
  streamMetrics: EventStreamMetrics,
  name: string,
  from: bigint | undefined,
  max: number,
  context: CallContext,
  deliver: (messages: StreamEventsResponse[]) => Promise<void>,
): Promise<void> {
  const entry = registry.require(name);
  const log = entry.backend.log;
  if (log.subscribers >= LIMITS.maxSubscribersPerSmmu) {
    throw new VplaneError({
      code: "RESOURCE_EXHAUSTED",
      reason: "TOO_MANY_SUBSCRIBERS",
      message: `at most ${LIMITS.maxSubscribersPerSmmu} event streams per SMMU`,
    });
  }
  let next = from ?? log.nextSequence;
  log.subscribers++;
  try {
    while (!context.signal.aborted) {
      const batch: StreamEventsResponse[] = [];
      for (let read = log.read(next); read !== undefined && batch.length < max; read = log.read(next)) {
        batch.push(streamMessage(read));
        if (read.kind === "missed") streamMetrics.lost(Number(read.count));
        next = read.kind === "missed" ? read.sequence + read.count : read.sequence + 1n;
      }
      if (batch.length > 0) {
        await deliver(batch);
        streamMetrics.sent(Number(log.nextSequence - next));
        continue;
      }
      if (registry.find(name) !== entry) return;
      await log.waitForNext(context.signal);
    }
  } catch (error) {
    if (context.signal.aborted) return;
    throw error;
  } finally {
    log.subscribers--;
  }
}
