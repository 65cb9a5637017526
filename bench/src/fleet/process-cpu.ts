// CPU time spent by groups of processes over a benchmark phase (Linux /proc), so a throughput
// ratio can be explained by CPU per operation, not only measured: on a 2-core machine the
// fleet's etcd members, gateways and hosts compete for the same cores.
import { readFileSync } from "node:fs";

/** Linux reports utime/stime in clock ticks of 1/100 s (USER_HZ, fixed at 100 on every arch). */
const TICK_MS = 10;

/** utime + stime of `pid` in ms; 0 once it exited (a killed member costs nothing more). */
function processCpuMs(pid: number): number {
  try {
    // The command name (field 2) is in parentheses and may hold spaces: fields after its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // fields 14 and 15 of proc(5)
  } catch {
    return 0;
  }
}

/** Busy and total CPU ms of the whole machine (every process, other users' too), from /proc/stat. */
function machineCpuMs(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const values = ticks.map(Number);
  const idle = values[3]! + values[4]!; // idle + iowait
  const total = values.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) * TICK_MS, total: total * TICK_MS };
}

/** Process ids by group name ("gateways", "etcd", ...); "bench" is this process itself. */
export type ProcessGroups = Record<string, () => number[]>;

export interface CpuSample {
  /** CPU ms per group over the interval. */
  groups: Record<string, number>;
  /** The whole machine's busy share over the interval, 0..1 of all its cores. */
  machineBusy: number;
}

/** Starts counting; the returned function answers what each group spent since. */
export function startCpuCount(groups: ProcessGroups): () => CpuSample {
  // Per process, so a member restarted meanwhile (a new pid) adds what the new one spent.
  const read = () => {
    const byPid = new Map<string, number>();
    for (const [name, pids] of Object.entries(groups))
      for (const pid of pids()) byPid.set(`${name}/${pid}`, processCpuMs(pid));
    const own = process.cpuUsage();
    byPid.set("bench/self", (own.user + own.system) / 1000);
    return { byPid, machine: machineCpuMs() };
  };
  const before = read();
  return () => {
    const after = read();
    const spent: Record<string, number> = {};
    for (const [key, ms] of after.byPid) {
      const group = key.slice(0, key.lastIndexOf("/"));
      spent[group] = (spent[group] ?? 0) + Math.max(0, ms - (before.byPid.get(key) ?? 0));
    }
    const total = after.machine.total - before.machine.total;
    return { groups: spent, machineBusy: total > 0 ? (after.machine.busy - before.machine.busy) / total : 0 };
  };
}
