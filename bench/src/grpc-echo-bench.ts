import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { credentials } from "@grpc/grpc-js";
import { EchoServiceClient } from "@vplane/proto/gen/vplane/testing/v1/echo";
import { closedLoopLoad, type LoadResult } from "./closed-loop-load.js";
import type { BenchRow } from "./result-table.js";

const LOAD = { concurrency: 32, durationMs: 3000, warmupMs: 1000 };
const ROUNDS = 3;
/** Issue 2: the service kit keeps at least 0.9 of the bare server's calls/s. */
const MIN_RATIO = 0.9;

export async function measure(kind: "bare" | "kit"): Promise<LoadResult> {
  const worker = new Worker(new URL("./echo-server-worker.js", import.meta.url), { workerData: { kind } });
  const [{ port }] = (await once(worker, "message")) as [{ port: number }];
  const client = new EchoServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const request = { payload: "ping", failWithReason: "" };
  const result = await closedLoopLoad(
    () => new Promise((resolve, reject) => client.echo(request, (e, r) => (e ? reject(e) : resolve(r)))),
    LOAD,
  );
  client.close();
  worker.postMessage("stop");
  await once(worker, "exit");
  return result;
}

function median(results: LoadResult[]): LoadResult {
  return [...results].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(results.length / 2)]!;
}

/**
 * Unary calls/s and p50/p99 of a trivial method, bare grpc-js against service-kit, same run,
 * same client and concurrency; rounds alternate so drift in the machine hits both alike.
 */
export async function grpcEchoBench(): Promise<BenchRow[]> {
  const bare: LoadResult[] = [];
  const kit: LoadResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bare.push(await measure("bare"));
    kit.push(await measure("kit"));
  }
  const b = median(bare);
  const k = median(kit);
  const ratio = k.opsPerSec / b.opsPerSec;
  const name = `unary echo, ${LOAD.concurrency} in flight`;
  return [
    { benchmark: name, variant: "bare grpc-js (baseline)", ...b },
    {
      benchmark: name,
      variant: "service-kit",
      ...k,
      ratio,
      target: `>= ${MIN_RATIO} of bare`,
      met: ratio >= MIN_RATIO,
    },
  ];
}
