/** Collects per-operation latencies (ns) and answers percentiles in µs. */
export class LatencyRecorder {
  private samples: number[] = [];

  record(nanoseconds: number): void {
    this.samples.push(nanoseconds);
  }

  get count(): number {
    return this.samples.length;
  }

  percentileUs(p: number): number {
    if (this.samples.length === 0) return 0;
    const sorted = Float64Array.from(this.samples).sort();
    const index = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
    return sorted[index]! / 1000;
  }
}
