import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { SparseGuestMemory, type GuestMemory } from "@vplane/guest-memory";
import { iommuDescriptionWith, type SmmuRegistry } from "@vplane/iommu";
import type {
  StreamEventBatchesResponse,
  StreamEventsResponse,
} from "@vplane/proto/gen/vplane/iommu/v1/fault";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { configSpecOf, loadConfig, startService, unaryCall } from "@vplane/service-kit";
import { Perm, Smmu, TranslationResult, buildCommand, encodeContextDescriptor } from "@vplane/smmuv3";
import type { BenchRow } from "./result-table.js";
import { smmuMigrationBench } from "./smmu-migration-bench.js";

/** Issue 4 targets, in-process with in-memory guest RAM. */
const MIN_HITS_PER_SEC = 10_000_000;
const MIN_NESTED_MISSES_PER_SEC = 500_000;
const PAGES = 4096;
const IOVA = 0x40_0000_0000;
const ROUNDS = 3;
const DURATION_MS = 1000;

/**
 * A VM as its guest leaves it: stage 2 maps 1 GiB of IPA onto the RAM backing at +1 GiB (so
 * neither stage is the identity), and the guest's 4K, 48-bit stage-1 table (4 levels, in guest
 * RAM) maps PAGES pages; device 1 translates through CD 0.
 */
function bootedSmmu(memory: GuestMemory): Smmu {
  const smmu = new Smmu({ memory, vmid: 1, limits: { iotlbEntries: 2 * PAGES } });
  const host = (ipa: number) => ipa + 0x4000_0000;
  smmu.mapStage2(0, 0x4000_0000, 0x4000_0000, Perm.READ_WRITE);
  let next = 0x10_0000;
  const allocate = () => (next += 0x1000) - 0x1000;
  const root = allocate();
  for (let i = 0; i < PAGES; i++) {
    const va = IOVA + i * 0x1000;
    let table = root;
    for (const shift of [39, 30, 21]) {
      const at = host(table + (Math.floor(va / 2 ** shift) % 512) * 8);
      const d = memory.readU64LE(at);
      if ((d & 3n) === 3n) table = Number(d & ~0xfffn);
      else {
        table = allocate();
        memory.writeU64LE(at, BigInt(table) | 3n);
      }
    }
    memory.writeU64LE(
      host(table + (Math.floor(va / 0x1000) % 512) * 8),
      BigInt(0x100_0000 + i * 0x1000) | (1n << 10n) | 3n,
    );
  }
  encodeContextDescriptor({ asid: 3, t0sz: 16, tg0: 0, ttb0: root }).forEach((w, i) =>
    memory.writeU64LE(host(0x8000) + i * 8, w),
  );
  smmu.attachDevice(1, 1);
  smmu.setGuestSte(1, [1n | (5n << 1n) | 0x8000n, 0n]);
  return smmu;
}

/** Translations/s of `step` over the pages, best of ROUNDS runs of DURATION_MS. */
function rate(smmu: Smmu, before: (() => void) | undefined): number {
  const out = new TranslationResult();
  let best = 0;
  for (let round = 0; round < ROUNDS + 1; round++) {
    let n = 0;
    const start = performance.now();
    const end = start + (round === 0 ? 200 : DURATION_MS);
    while (performance.now() < end) {
      for (let i = 0; i < 1024; i++) {
        before?.();
        smmu.translateInto(out, 1, -1, IOVA + ((n + i) % PAGES) * 0x1000 + 8, false);
      }
      n += 1024;
    }
    if (out.outcome !== "translated") throw new Error(`bench translation failed: ${out.outcome}`);
    if (round > 0) best = Math.max(best, n / ((performance.now() - start) / 1000));
  }
  return best;
}

/**
 * Translations/s in one process: IOTLB hits; stage-1 misses (the 4-level guest walk, its table
 * addresses served by cached stage-2 entries; the ASID's entries dropped before each one); and
 * cold nested misses (everything dropped before each one: the CD's stage 2, 4 stage-1 levels each
 * with a 4-level stage-2 walk of the table address, and the 4-level stage-2 walk of the output).
 */
export async function smmuBench(): Promise<BenchRow[]> {
  const smmu = bootedSmmu(new SparseGuestMemory(2 ** 31));
  const hits = rate(smmu, undefined);
  const stage1 = rate(smmu, () => smmu.iotlb.invalidateAsid(3, 1));
  const nested = rate(smmu, () => smmu.iotlb.invalidateAll());
  return [
    {
      benchmark: "SMMU translate, in-process",
      variant: "IOTLB hit",
      opsPerSec: hits,
      target: `>= ${MIN_HITS_PER_SEC.toLocaleString("en-US")}/s`,
      met: hits >= MIN_HITS_PER_SEC,
    },
    {
      benchmark: "SMMU translate, in-process",
      variant: "stage-1 miss (4 levels, stage-2 cached)",
      opsPerSec: stage1,
    },
    {
      benchmark: "SMMU translate, in-process",
      variant: "nested miss, cold (4 x 4 levels + output)",
      opsPerSec: nested,
      target: `>= ${MIN_NESTED_MISSES_PER_SEC.toLocaleString("en-US")}/s`,
      met: nested >= MIN_NESTED_MISSES_PER_SEC,
    },
    ...(await smmuServiceBench()),
    ...(await smmuMigrationBench()),
  ];
}

/** Issue 4: at least 200,000 events/s delivered to a streaming client. */
const MIN_STREAMED_EVENTS_PER_SEC = 200_000;
const GRPC_DURATION_MS = 2000;
const BATCH = 1024;

/** The iommu service in this process, an SMMU whose device 1 reports C_BAD_STE on every translation. */
async function startIommuForBench() {
  let registry: SmmuRegistry | undefined;
  const description = iommuDescriptionWith({ onRegistry: (r) => (registry = r) });
  const dataDir = mkdtempSync(join(tmpdir(), "vplane-iommu-bench-"));
  const config = loadConfig(configSpecOf(description), {
    argv: ["--addr=127.0.0.1:0", `--data-dir=${dataDir}`, "--log-level=silent"],
    env: {},
  });
  const running = await startService(description, config);
  const client = new IommuServiceClient(running.server.address, credentials.createInsecure());
  type Client = IommuServiceClient;
  const call = <K extends keyof Client>(method: K, request: Parameters<Client[K]>[0]) =>
    unaryCall(
      (client[method] as unknown as Parameters<typeof unaryCall<typeof request, unknown>>[0]).bind(client),
      request,
      { timeoutMs: 30_000 },
    );
  const name = "vms/bench/smmus/smmu0";
  await call("createSmmu", {
    smmu: {
      name: "",
      vm: "bench",
      smmuId: "smmu0",
      backend: 1,
      features: undefined,
      guestMemory: undefined,
      vmid: 0,
      createTime: undefined,
      stage2GranuleBytes: 0,
      eventQueueDepth: 0,
      pageRequestTimeoutMs: 0,
    },
    requestId: "",
  });
  await call("attachDevice", {
    name,
    streamId: 1,
    virtualStreamId: 1,
    pageRequests: false,
    requestId: "",
  });
  await call("attachPasidTable", {
    name,
    form: { $case: "guestSte", value: { streamId: 1, ste0: 0n, ste1: 0n, flags: 0 } },
    requestId: "",
  });
  return {
    client,
    call,
    name,
    backend: registry!.find(name)!.backend,
    async stop() {
      client.close();
      await running.stop(1000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type BenchService = Awaited<ReturnType<typeof startIommuForBench>>;

/** Raw commands/s through Invalidate, BATCH commands per call (TLBI_NH_VA by 4K page), 4 calls in flight. */
async function invalidationRate(s: BenchService): Promise<number> {
  const entries = Array.from({ length: BATCH }, (_, i) => {
    const [cmd0, cmd1] = buildCommand.nhVa(3, 0x4000_0000 + i * 0x1000);
    return { entry: { $case: "raw" as const, value: { cmd0, cmd1 } } };
  });
  let commands = 0;
  const end = performance.now() + GRPC_DURATION_MS;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < end) {
        await s.call("invalidate", { name: s.name, entries, requestId: "" });
        commands += BATCH;
      }
    }),
  );
  return commands / ((performance.now() - start) / 1000);
}

/**
 * Events/s a client receives while the SMMU produces them in-process as fast as the stream takes
 * them (the producer stays within the stream buffer, so nothing is lost): one event per
 * StreamEvents message, or as many as are ready per StreamEventBatches message.
 */
async function streamedEventRate(s: BenchService, batched: boolean): Promise<{ rate: number; lost: bigint }> {
  const log = s.backend.log;
  let received = 0;
  let lost = 0n;
  const count = (m: StreamEventsResponse) => {
    if (m.kind?.$case === "event") received++;
    else if (m.kind?.$case === "lost") lost += m.kind.value.count;
  };
  const request = { name: s.name, fromSequence: log.nextSequence };
  const stream = batched
    ? s.client
        .streamEventBatches({ ...request, maxBatch: 0 })
        .on("data", (b: StreamEventBatchesResponse) => b.messages.forEach(count))
    : s.client.streamEvents(request).on("data", count);
  stream.on("error", () => undefined);
  await new Promise((r) => setTimeout(r, 100));
  const first = log.nextSequence;
  const start = performance.now();
  const end = start + GRPC_DURATION_MS;
  while (performance.now() < end) {
    if (log.nextSequence - first - BigInt(received) < 2048n) {
      for (let i = 0; i < 256; i++) s.backend.translate(1, undefined, 0n, false);
    }
    await new Promise((r) => setImmediate(r));
  }
  const rate = received / ((performance.now() - start) / 1000);
  stream.cancel();
  return { rate, lost };
}

/** Raw invalidation commands/s through the batched RPC, and events/s delivered to a streaming client. */
export async function smmuServiceBench(): Promise<BenchRow[]> {
  const s = await startIommuForBench();
  try {
    const invalidations = await invalidationRate(s);
    const single = await streamedEventRate(s, false);
    const batched = await streamedEventRate(s, true);
    return [
      {
        benchmark: "iommu gRPC",
        variant: `raw invalidation commands, ${BATCH} per Invalidate call`,
        opsPerSec: invalidations,
      },
      {
        benchmark: "iommu gRPC",
        variant: `events to a StreamEvents client, one per message (${single.lost} lost)`,
        opsPerSec: single.rate,
      },
      {
        benchmark: "iommu gRPC",
        variant: `events to a StreamEventBatches client (${batched.lost} lost)`,
        opsPerSec: batched.rate,
        target: `>= ${MIN_STREAMED_EVENTS_PER_SEC.toLocaleString("en-US")}/s`,
        met: batched.rate >= MIN_STREAMED_EVENTS_PER_SEC,
      },
    ];
  } finally {
    await s.stop();
  }
}
