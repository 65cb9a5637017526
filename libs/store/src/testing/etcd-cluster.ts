// A 3-member etcd cluster on loopback (Debian's etcd-server, one process per member), for the
// store's failover tests and the fleet test and benchmark: a member can be killed outright
// (kill -9) and started again on its own data directory, as a crashed member rejoins.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findEtcdBinary, freeLoopbackPorts } from "./etcd-server.js";

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child?: ChildProcess;
}

/** Raft timing of every member (etcd's --heartbeat-interval and --election-timeout, ms). */
export interface RaftTiming {
  heartbeatMs: number;
  electionMs: number;
}

/**
 * For the fleet test: a loaded test machine stalls processes for hundreds of ms, and an election
 * for each stall would only slow it down.
 */
export const PATIENT_RAFT: RaftTiming = { heartbeatMs: 200, electionMs: 2000 };

/** A member's /metrics page; empty when it does not answer (killed). */
const metricsOf = (member: Member): Promise<string> =>
  fetch(`${member.clientUrl}/metrics`).then(
    (response) => response.text(),
    () => "",
  );

export class EtcdCluster {
  private constructor(
    private readonly binary: string,
    private readonly members: Member[],
    private readonly root: string,
    private readonly timing: RaftTiming,
  ) {}

  /** Starts `size` members (default 3) and waits until every one answers healthy. */
  static async start(size = 3, timing: RaftTiming = PATIENT_RAFT): Promise<EtcdCluster> {
    const binary = findEtcdBinary();
    if (!binary) throw new Error("etcd is not on PATH (Debian: apt-get install etcd-server)");
    const ports = await freeLoopbackPorts(2 * size);
    const root = mkdtempSync(join(tmpdir(), "vplane-etcd-cluster-"));
    const members = Array.from({ length: size }, (_, i) => ({
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir: join(root, `m${i}`),
    }));
    const cluster = new EtcdCluster(binary, members, root, timing);
    for (const member of members) cluster.launch(member);
    await Promise.all(members.map((member) => cluster.waitHealthy(member)));
    return cluster;
  }

  /** host:port of every member, for a store URL (etcd://a,b,c/prefix). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl.slice("http://".length));
  }

  /** Process ids of the members running now. */
  get pids(): number[] {
    return this.members.flatMap((m) =>
      m.child?.pid !== undefined && m.child.exitCode === null ? [m.child.pid] : [],
    );
  }

  /**
   * Calls the members answered so far, by gRPC method (each member's grpc_server_handled_total
   * on its /metrics, summed; a restarted member counts from 0 again).
   */
  async handledCalls(methods: string[]): Promise<Record<string, number>> {
    const calls: Record<string, number> = Object.fromEntries(methods.map((m) => [m, 0]));
    const pattern = /^grpc_server_handled_total\{(.*)\} (\S+)$/gm;
    for (const member of this.members) {
      const text = await metricsOf(member);
      for (const [, labels, value] of text.matchAll(pattern)) {
        const method = /grpc_method="([^"]+)"/.exec(labels!)?.[1];
        if (method && method in calls) calls[method]! += Number(value);
      }
    }
    return calls;
  }

  /**
   * Leader changes the cluster went through so far: the most any answering member saw (its
   * etcd_server_leader_changes_seen_total; a killed member does not answer, a restarted one
   * counts from its start again).
   */
  async leaderChanges(): Promise<number> {
    let most = 0;
    for (const member of this.members) {
      const text = await metricsOf(member);
      const seen = /^etcd_server_leader_changes_seen_total (\S+)$/m.exec(text)?.[1];
      if (seen !== undefined) most = Math.max(most, Number(seen));
    }
    return most;
  }

  /**
   * The member that leads now (its Maintenance.Status, through etcd's JSON gateway, names itself
   * leader; a member that does not answer, killed, does not lead): killing it is the hard case,
   * writes wait for an election. Status, not /metrics: a 150 KB metrics page costs each member
   * ~6 ms to render, which polling every 20 ms during the kill phase added to what it measured.
   */
  async leader(): Promise<number> {
    for (const [index, member] of this.members.entries()) {
      const status = await fetch(`${member.clientUrl}/v3/maintenance/status`, { method: "POST", body: "{}" })
        .then((response) => response.json() as Promise<{ header?: { member_id?: string }; leader?: string }>)
        .catch(() => undefined);
      if (status?.leader !== undefined && status.leader === status.header?.member_id) return index;
    }
    throw new Error("no etcd member says it leads");
  }

  storeUrl(prefix: string): string {
    return `etcd://${this.endpoints.join(",")}/${prefix}`;
  }

  /** kill -9 of member `index`: no goodbye to its peers, its data directory stays. */
  async kill(index: number): Promise<void> {
    const member = this.members[index]!;
    const child = member.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }

  /** Starts member `index` again on its data directory and waits until it is healthy. */
  async restart(index: number): Promise<void> {
    const member = this.members[index]!;
    this.launch(member);
    await this.waitHealthy(member);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.root, { recursive: true, force: true });
  }

  private launch(member: Member): void {
    const cluster = this.members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    const child = spawn(
      this.binary,
      [
        `--name=${member.name}`,
        `--data-dir=${member.dataDir}`,
        `--listen-client-urls=${member.clientUrl}`,
        `--advertise-client-urls=${member.clientUrl}`,
        `--listen-peer-urls=${member.peerUrl}`,
        `--initial-advertise-peer-urls=${member.peerUrl}`,
        `--initial-cluster=${cluster}`,
        "--initial-cluster-state=new", // ignored on a restart: the data directory says the cluster
        "--initial-cluster-token=vplane-fleet",
        `--heartbeat-interval=${this.timing.heartbeatMs}`,
        `--election-timeout=${this.timing.electionMs}`,
        "--logger=zap",
        "--log-level=error",
      ],
      { stdio: ["ignore", "ignore", "ignore"] },
    );
    const killOnExit = () => child.kill("SIGKILL");
    process.on("exit", killOnExit);
    child.once("exit", () => process.off("exit", killOnExit));
    member.child = child;
  }

  private async waitHealthy(member: Member, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const child = member.child!;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`etcd member ${member.name} exited (${child.exitCode ?? child.signalCode})`);
      try {
        const response = await fetch(`${member.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        if (((await response.json()) as { health?: unknown }).health === "true") return;
      } catch {
        // not up yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`etcd member ${member.name} not healthy within ${timeoutMs} ms`);
  }
}
