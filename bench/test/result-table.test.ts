import assert from "node:assert/strict";
import { it } from "node:test";
import { LatencyRecorder } from "../src/latency-recorder.js";
import { markdownTable } from "../src/result-table.js";

it("prints one markdown row per result with ratio and whether the target was met", () => {
  const table = markdownTable([
    { benchmark: "echo", variant: "bare", opsPerSec: 20000, p50Us: 1500.25, p99Us: 3000 },
    {
      benchmark: "echo",
      variant: "kit",
      opsPerSec: 17000,
      ratio: 0.85,
      target: ">= 0.9 of bare",
      met: false,
    },
  ]);
  const lines = table.split("\n");
  assert.equal(lines.length, 4);
  assert.equal(lines[2], "| echo | bare | 20,000 | 1,500.3 | 3,000.0 |  |  |  |");
  assert.equal(lines[3], "| echo | kit | 17,000 |  |  | 0.85 | >= 0.9 of bare | **no** |");
});

it("answers percentiles over the recorded samples", () => {
  const recorder = new LatencyRecorder();
  for (let i = 1; i <= 100; i++) recorder.record(i * 1000);
  assert.equal(recorder.percentileUs(50), 51);
  assert.equal(recorder.percentileUs(99), 100);
});
