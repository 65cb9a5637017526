import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "@vplane/store";
import { LatencyRecorder } from "./latency-recorder.js";
import type { BenchRow } from "./result-table.js";

/** A registry record's size: a VM or a source's routing. */
const SMALL_VALUE = { name: "web-1", vcpus: 2, memoryBytes: 67108864, state: "READY", host: "local" };
/** An imported interrupt controller's state, written inside a migration's downtime (760 KB). */
const LARGE_VALUE = new Uint8Array(760 * 1024).map((_, i) => (i * 2654435761) >>> 24);
const OPS_IN_TRANSACTION = 64;

interface Measured {
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
}

/** Runs `op` `count` times one after another (each awaited), after a warm-up of a tenth. */
async function measure(count: number, op: (i: number) => unknown): Promise<Measured> {
  for (let i = 0; i < Math.ceil(count / 10); i++) await op(-1 - i);
  const latencies = new LatencyRecorder();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await op(i);
    latencies.record(Number(process.hrtime.bigint() - t0));
  }
  return {
    opsPerSec: count / ((performance.now() - started) / 1000),
    p50Us: latencies.percentileUs(50),
    p99Us: latencies.percentileUs(99),
  };
}

/** The least a durable write costs on this disk: the same bytes appended and fdatasync'd. */
async function syncedAppend(dir: string, bytes: Uint8Array, count: number): Promise<Measured> {
  const fd = openSync(join(dir, `append-${bytes.byteLength}`), "w");
  try {
    return await measure(count, () => {
      writeSync(fd, bytes);
      fdatasyncSync(fd);
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * The embedded SQLite store (WAL, synchronous=FULL, 16 KiB pages): acknowledged writes of a
 * registry-sized record and of a 760 KB device state, a 64-put transaction and a read, each
 * against the same bytes appended to a file and fdatasync'd in the same run.
 */
export async function storeBench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "vplane-store-bench-"));
  const store = new SqliteStore(join(dir, "bench.db"));
  try {
    const small = Buffer.from(JSON.stringify(SMALL_VALUE));
    const smallBaseline = await syncedAppend(dir, small, 400);
    const smallPut = await measure(400, (i) => store.put(`vms/t/vm-${i}`, { ...SMALL_VALUE, i }));
    const largeBaseline = await syncedAppend(dir, LARGE_VALUE, 60);
    const largePut = await measure(60, (i) => store.put(`state/${i % 8}`, LARGE_VALUE));
    const transaction = await measure(100, (i) =>
      store.transaction(
        Array.from({ length: OPS_IN_TRANSACTION }, (_, j) => ({
          op: "put" as const,
          key: `sources/${i}/${j}`,
          value: { ...SMALL_VALUE, j },
        })),
      ),
    );
    const get = await measure(20_000, (i) => store.get(`vms/t/vm-${Math.abs(i) % 400}`));
    const name = "SQLite store (WAL, synchronous=FULL), one writer";
    const row = (variant: string, m: Measured, baseline?: Measured): BenchRow => ({
      benchmark: name,
      variant,
      ...m,
      ...(baseline ? { ratio: m.opsPerSec / baseline.opsPerSec } : {}),
    });
    return [
      row(`${small.byteLength} B appended + fdatasync (baseline)`, smallBaseline),
      row(`put ${small.byteLength} B JSON record`, smallPut, smallBaseline),
      row("760 KiB appended + fdatasync (baseline)", largeBaseline),
      row("put 760 KiB bytes (imported device state)", largePut, largeBaseline),
      row(`transaction of ${OPS_IN_TRANSACTION} puts (ops/s = transactions/s)`, transaction, smallBaseline),
      row("get (cached page)", get),
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
