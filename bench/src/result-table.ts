/** One measured line of a benchmark table. */
export interface BenchRow {
  benchmark: string;
  /** What was measured, e.g. "bare grpc-js" (the baseline) or "service-kit". */
  variant: string;
  opsPerSec: number;
  p50Us?: number | undefined;
  p99Us?: number | undefined;
  /** This row's ops/s over the same-run baseline row's, when the row has a baseline. */
  ratio?: number | undefined;
  /** The goal the issue sets, in words, e.g. ">= 0.9 of bare". */
  target?: string | undefined;
  met?: boolean | undefined;
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined) return "";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A markdown table of the rows, ready for the README. */
export function markdownTable(rows: BenchRow[]): string {
  const header = "| benchmark | variant | ops/s | p50 µs | p99 µs | vs baseline | target | met |";
  const rule = "|---|---|---:|---:|---:|---:|---|---|";
  const lines = rows.map(
    (r) =>
      `| ${r.benchmark} | ${r.variant} | ${fmt(r.opsPerSec)} | ${fmt(r.p50Us, 1)} | ${fmt(r.p99Us, 1)} | ${
        r.ratio === undefined ? "" : fmt(r.ratio, 2)
      } | ${r.target ?? ""} | ${r.met === undefined ? "" : r.met ? "yes" : "**no**"} |`,
  );
  return [header, rule, ...lines].join("\n");
}
