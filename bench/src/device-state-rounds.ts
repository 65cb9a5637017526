import type { BenchRow } from "./result-table.js";

/** The phases of one in-process device-state round (issue 6 downtime: quiesce → resume). */
export const DEVICE_STATE_PHASES = ["quiesce", "export", "import", "resume"] as const;

/** Issue 6: at most 30 ms of device-state downtime for the whole VM (XIVE, SMMU and transfer). */
export const DOWNTIME_BUDGET_MS = 30;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * Runs `round` warmUps + rounds times; each call returns the performance.now() stamps at the
 * start and after each of the 4 phases. Returns one row per phase (rounds/s, p50 and p99) and a
 * row for the whole round against the downtime budget. `variants` names the phases in the table.
 */
export function deviceStateRows(
  benchmark: () => string,
  variants: readonly [string, string, string, string],
  options: { rounds: number; warmUps: number },
  round: () => readonly number[],
): BenchRow[] {
  const phases: number[][] = DEVICE_STATE_PHASES.map(() => []);
  const total: number[] = [];
  for (let r = -options.warmUps; r < options.rounds; r++) {
    const stamps = round();
    if (r < 0) continue;
    phases.forEach((ms, i) => ms.push(stamps[i + 1]! - stamps[i]!));
    total.push(stamps[DEVICE_STATE_PHASES.length]! - stamps[0]!);
  }
  const name = benchmark();
  const row = (variant: string, ms: number[], budget?: number): BenchRow => {
    const sorted = [...ms].sort((a, b) => a - b);
    const p50 = percentile(sorted, 0.5);
    return {
      benchmark: name,
      variant,
      opsPerSec: 1000 / (ms.reduce((a, b) => a + b, 0) / ms.length),
      p50Us: p50 * 1000,
      p99Us: percentile(sorted, 0.99) * 1000,
      ...(budget === undefined ? {} : { target: `p50 <= ${budget} ms (whole VM)`, met: p50 <= budget }),
    };
  };
  return [
    ...variants.map((v, i) => row(v, phases[i]!)),
    row("quiesce + export + import + resume", total, DOWNTIME_BUDGET_MS),
  ];
}
