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
/** An imported 1,048,576-source interrupt controller's state as its store keeps it: 40 chunks of 512 KiB. */
const IMPORTED_CHUNKS = 40;
const IMPORTED_CHUNK = new Uint8Array(512 * 1024).map((_, i) => (i * 2654435761) >>> 24);

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
 * A read and a deferred write of an interrupt controller's record (a migration's FinishImport
 * writes it inside the downtime) alone in a store, then beside its imported 1M-source state:
 * what large values cost the keys beside them.
 */
async function besideLargeValues(dir: string, small: Buffer, name: string): Promise<BenchRow[]> {
  const store = new SqliteStore(join(dir, "beside.db"));
  try {
    // The interrupt controller's keys: a controller's record sorts right after its state's chunks.
    const record = "interrupt-controller/controllers/vm-1";
    await store.put(record, SMALL_VALUE);
    const get = () => measure(20_000, () => store.get(record));
    const put = () =>
      measure(400, (i) =>
        store.transaction([{ op: "put", key: record, value: { ...SMALL_VALUE, i } }], {
          durability: "deferred",
        }),
      );
    const [getAlone, putAlone] = [await get(), await put()];
    for (let i = 0; i < IMPORTED_CHUNKS; i++)
      await store.put(
        `interrupt-controller/config/vm-1/imported/${String(i).padStart(6, "0")}`,
        IMPORTED_CHUNK,
      );
    const [getBeside, putBeside] = [await get(), await put()];
    const beside = `beside its state's ${IMPORTED_CHUNKS} chunks of 512 KiB (an imported 1,048,576-source controller)`;
    return [
      { benchmark: name, variant: "get a controller's record, alone (baseline)", ...getAlone },
      {
        benchmark: name,
        variant: `get it ${beside}`,
        ...getBeside,
        ratio: getBeside.opsPerSec / getAlone.opsPerSec,
      },
      {
        benchmark: name,
        variant: `deferred put of that ${small.byteLength} B record (as FinishImport writes it), alone (baseline)`,
        ...putAlone,
      },
      {
        benchmark: name,
        variant: `deferred put of it ${beside}`,
        ...putBeside,
        ratio: putBeside.opsPerSec / putAlone.opsPerSec,
      },
    ];
  } finally {
    await store.close();
  }
}

/**
 * The embedded SQLite store (WAL, synchronous=FULL, 16 KiB pages): acknowledged writes of a
 * registry-sized record and of a 760 KB device state, a 64-put transaction and a read, each
 * against the same bytes appended to a file and fdatasync'd in the same run; reads and deferred
 * writes beside large values (besideLargeValues).
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
      ...(await besideLargeValues(dir, small, name)),
    ];
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
