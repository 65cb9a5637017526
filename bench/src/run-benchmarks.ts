// `npm run bench`: runs every benchmark (or those named on the command line), prints one
// markdown table and writes it with the raw numbers to bench/results/latest.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fleetBench } from "./fleet-bench.js";
import { gatewayBench } from "./gateway-bench.js";
import { grpcEchoBench } from "./grpc-echo-bench.js";
import { hostKernelIoctlBench } from "./host-kernel-ioctl-bench.js";
import { interruptGrpcBench } from "./interrupt-grpc-bench.js";
import { migrationDowntimeBench } from "./migration-downtime-bench.js";
import { markdownTable, type BenchRow } from "./result-table.js";
import { smmuBench } from "./smmu-bench.js";
import { storeBench } from "./store-bench.js";
import { xiveBench } from "./xive-bench.js";
import { xiveMigrationBench } from "./xive-migration-bench.js";

const suites: Record<string, () => Promise<BenchRow[]>> = {
  "grpc-echo": grpcEchoBench,
  xive: xiveBench,
  "xive-migration": xiveMigrationBench,
  "interrupt-grpc": interruptGrpcBench,
  smmu: smmuBench,
  "host-kernel-ioctl": hostKernelIoctlBench,
  gateway: gatewayBench,
  "migration-downtime": migrationDowntimeBench,
  store: storeBench,
  fleet: fleetBench,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in suites));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(suites).join(", ")}`);
  process.exit(2);
}
const rows: BenchRow[] = [];
for (const [name, suite] of Object.entries(suites)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  console.error(`running ${name} ...`);
  rows.push(...(await suite()));
}
const table = markdownTable(rows);
console.log(table);
const resultsDir = new URL("../../results/", import.meta.url);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  new URL("latest.json", resultsDir),
  JSON.stringify(
    { date: new Date().toISOString(), node: process.version, cpus: cpus().length, rows, table },
    null,
    2,
  ),
);
