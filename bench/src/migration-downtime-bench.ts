// Issue 6's benchmark: device-state downtime of a live migration (quiesce + export + transfer +
// import + resume) against state size, through the real services on loopback: two hosts in this
// process, each with its interrupt-controller, IOMMU and migration services and its own data
// folder. A VM of the row's size is built on one host through the services' RPCs (the interrupt
// controller's batched and hypercall RPCs, the IOMMU's; not timed), then migrated back and forth with StartMigration
// (vmm_moves_ram: only device state crosses); each migration's OperationProgress.downtime_ms
// (source quiesce → destination resumed) and device_state_bytes are what the rows report.
import { timeDeviceStateCalls, type DeviceStateCallTimes } from "./device-state-call-times.js";
import { MigrationBenchHost, type MigrationResult } from "./migration-bench-host.js";
import type { BenchRow } from "./result-table.js";
import { QUEUES_PER_VCPU, buildVm, deleteVm, type VmSize } from "./sized-guest-vm.js";

/** Issue 6: at most 30 ms of device-state downtime at 8,192 sources, 2,048 vCPUs, 256 StreamIDs. */
const DOWNTIME_TARGET_MS = 30;

interface SizeRow extends VmSize {
  /** Unmeasured migrations first (warming this size's code paths), then measured ones. */
  warmUps: number;
  rounds: number;
  /** The point, checked against its target. */
  target?: boolean;
}

/**
 * The rows, small to large, up to the issue's largest point (1,048,576 sources: ~21 MB of device
 * state, in one message each way under the 64 MiB default limit). The target point gets three
 * unmeasured migrations first, so that both hosts' code paths are warm when its rounds start,
 * and twenty measured ones, so that its median does not hang on one noisy moment.
 */
const SIZES: SizeRow[] = [
  { sources: 4096, vcpus: 8, streamIds: 8, warmUps: 1, rounds: 10 },
  { sources: 8192, vcpus: 2048, streamIds: 256, warmUps: 3, rounds: 20, target: true },
  { sources: 65_536, vcpus: 2048, streamIds: 512, warmUps: 1, rounds: 3 },
  // Seconds to build each: no warm-up (the smaller rows warmed the code).
  { sources: 524_288, vcpus: 2048, streamIds: 1024, warmUps: 0, rounds: 3 },
  { sources: 1_048_576, vcpus: 2048, streamIds: 1024, warmUps: 0, rounds: 3 },
];
const BASELINE_ROUNDS = 20;
/** Unary round trips timed for the empty VM's target. */
const ROUND_TRIPS = 200;
/** Moves of the target point through the DeviceStateService calls alone. */
const CALL_ROUNDS = 6;

/** Migrations of `vm` back and forth, `warmUps` unmeasured then `rounds` measured; where it ends up. */
async function pingPong(
  hosts: [MigrationBenchHost, MigrationBenchHost],
  vm: string,
  warmUps: number,
  rounds: number,
): Promise<{ results: MigrationResult[]; on: MigrationBenchHost }> {
  let [from, to] = hosts;
  const results: MigrationResult[] = [];
  for (let round = -warmUps; round < rounds; round++) {
    const result = await from.migrate(vm, to);
    if (round >= 0) results.push(result);
    [from, to] = [to, from];
  }
  return { results, on: from };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const count = (n: number) => n.toLocaleString("en-US");

function describe(size: VmSize, stateBytes: number): string {
  const kib = (stateBytes / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 });
  const queues = size.vcpus === 0 ? 0 : QUEUES_PER_VCPU;
  return `${count(size.sources)} sources, ${count(size.vcpus)} vCPUs × ${queues} queues, ${count(size.streamIds)} StreamIDs; ${kib} KiB`;
}

/** A row with the raw numbers behind it (kept in bench/results/latest.json). */
interface DowntimeRow extends BenchRow {
  deviceStateBytes?: number;
  precopyBytes?: number;
  precopyIterations?: number;
  stopCopyBytes?: number;
  /** gRPC messages inside the downtime (both hosts), issue 14 point 4. */
  downtimeMessages?: number;
  dirtyPages?: number;
  downtimesMs?: number[];
  setupMs?: number;
}

const DOWNTIME = "live migration downtime (p50/p99 of downtime_ms; ops/s = whole migrations/s)";

function downtimeRow(variant: string, results: MigrationResult[], baseline?: BenchRow): DowntimeRow {
  const downtimes = results.map((r) => r.downtimeMs).sort((a, b) => a - b);
  const opsPerSec = 1000 / (results.reduce((sum, r) => sum + r.operationMs, 0) / results.length);
  return {
    benchmark: DOWNTIME,
    variant,
    opsPerSec,
    p50Us: percentile(downtimes, 0.5) * 1000,
    p99Us: percentile(downtimes, 0.99) * 1000,
    ...(baseline ? { ratio: opsPerSec / baseline.opsPerSec } : {}),
    deviceStateBytes: results[0]!.deviceStateBytes,
    precopyBytes: results[0]!.precopyBytes,
    precopyIterations: results[0]!.precopyIterations,
    stopCopyBytes: results[0]!.stopCopyBytes,
    downtimeMessages: results[0]!.downtimeMessages,
    dirtyPages: results[0]!.dirtyPages,
    downtimesMs: results.map((r) => r.downtimeMs),
  };
}

/** The device services' share of the target point's downtime, call by call. */
function callRows(size: VmSize, times: DeviceStateCallTimes): DowntimeRow[] {
  const benchmark = `${count(size.sources)} sources, ${count(size.vcpus)} vCPUs, ${count(size.streamIds)} StreamIDs: DeviceStateService calls alone`;
  const callRow = (variant: string, ms: number[]): DowntimeRow => {
    const sorted = [...ms].sort((a, b) => a - b);
    return {
      benchmark,
      variant,
      opsPerSec: 1000 / (ms.reduce((a, b) => a + b, 0) / ms.length),
      p50Us: percentile(sorted, 0.5) * 1000,
      p99Us: percentile(sorted, 0.99) * 1000,
    };
  };
  const rows: DowntimeRow[] = [];
  for (const [service, ms] of times.ms) {
    const bytes = times.bytes.get(service)!;
    rows.push(
      callRow(
        `${service}: ReadPreCopy iteration 0 (source, running; ${count(bytes.preCopy)} bytes)`,
        ms.readPreCopy,
      ),
      callRow(`${service}: PrepareImport (destination, while the source runs)`, ms.prepareImport),
      callRow(
        `${service}: StopAndCopy (source, quiesce + the rest; ${count(bytes.stop)} bytes)`,
        ms.stopAndCopy,
      ),
      callRow(`${service}: FinishImport (destination: apply, make durable, resume)`, ms.finishImport),
    );
  }
  return rows;
}

/**
 * Rows: an empty VM (a controller with no vCPU or source, an SMMU with no device: the fixed cost
 * of the services and the protocol; the baseline), then each size with p50/p99 of the measured
 * downtime, the issue's point checked against its 30 ms target and followed by the device
 * services' DeviceStateService calls alone.
 */
export async function migrationDowntimeBench(sizes: SizeRow[] = SIZES): Promise<BenchRow[]> {
  const hosts: [MigrationBenchHost, MigrationBenchHost] = await Promise.all([
    MigrationBenchHost.start(),
    MigrationBenchHost.start(),
  ]);
  const rows: DowntimeRow[] = [];
  try {
    const empty = { sources: 0, vcpus: 0, streamIds: 0 };
    await buildVm(hosts[0], "bench-empty", empty);
    const baselineRun = await pingPong(hosts, "bench-empty", 2, BASELINE_ROUNDS);
    await deleteVm(baselineRun.on, "bench-empty");
    const emptyBytes = baselineRun.results[0]!.deviceStateBytes;
    const baseline = downtimeRow(`empty VM (baseline): ${describe(empty, emptyBytes)}`, baselineRun.results);
    // Issue 14: the empty VM's downtime within 4 unary round trips measured in the same run.
    const trips: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) trips.push(await hosts[0].roundTrip());
    trips.sort((a, b) => a - b);
    const tripMs = percentile(trips, 0.5);
    rows.push(
      {
        benchmark: DOWNTIME,
        variant: "one unary gRPC round trip (GetCapabilities on loopback)",
        opsPerSec: 1000 / tripMs,
        p50Us: tripMs * 1000,
        p99Us: percentile(trips, 0.99) * 1000,
      },
      {
        ...baseline,
        target: `p50 <= 4 round trips (${(4 * tripMs).toFixed(2)} ms)`,
        met: baseline.p50Us! <= 4 * tripMs * 1000,
      },
    );
    for (const size of sizes) {
      const vm = `bench-${size.sources}-${size.vcpus}-${size.streamIds}`;
      const started = performance.now();
      await buildVm(hosts[0], vm, size);
      const setupMs = performance.now() - started;
      const run = await pingPong(hosts, vm, size.warmUps, size.rounds);
      const measured = downtimeRow(describe(size, run.results[0]!.deviceStateBytes), run.results, baseline);
      const p50Ms = measured.p50Us! / 1000;
      rows.push({
        ...measured,
        ...(size.target
          ? {
              target: `p50 <= ${DOWNTIME_TARGET_MS} ms and <= 1.5 x the empty VM's`,
              met: p50Ms <= DOWNTIME_TARGET_MS && measured.p50Us! <= 1.5 * baseline.p50Us!,
            }
          : {}),
        setupMs,
      });
      let on = run.on;
      if (size.target) {
        const other = on === hosts[0] ? hosts[1] : hosts[0];
        const calls = await timeDeviceStateCalls(on, other, vm, CALL_ROUNDS);
        on = calls.on;
        rows.push(...callRows(size, calls.times));
      }
      await deleteVm(on, vm);
    }
  } finally {
    await Promise.all(hosts.map((host) => host.stop()));
  }
  return rows;
}
