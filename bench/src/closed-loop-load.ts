import { LatencyRecorder } from "./latency-recorder.js";

export interface LoadResult {
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  operations: number;
}

/**
 * Closed-loop load: `concurrency` callers each issue the next operation as soon as the previous
 * one completes, for `durationMs` after a `warmupMs` that is not measured. Bounded in time, so
 * a load run always ends by itself.
 */
export async function closedLoopLoad(
  operation: () => Promise<unknown>,
  options: { concurrency: number; durationMs: number; warmupMs: number },
): Promise<LoadResult> {
  const latencies = new LatencyRecorder();
  let measuring = false;
  let done = false;
  const worker = async () => {
    while (!done) {
      const t0 = process.hrtime.bigint();
      await operation();
      if (measuring) latencies.record(Number(process.hrtime.bigint() - t0));
    }
  };
  const workers = Array.from({ length: options.concurrency }, worker);
  await new Promise((r) => setTimeout(r, options.warmupMs));
  measuring = true;
  const started = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, options.durationMs));
  measuring = false;
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  done = true;
  await Promise.all(workers);
  return {
    opsPerSec: latencies.count / elapsedS,
    p50Us: latencies.percentileUs(50),
    p99Us: latencies.percentileUs(99),
    operations: latencies.count,
  };
}
