// A throwaway single-member etcd for tests: loopback only, free ports, a temporary data
// directory, stopped (and its directory removed) by `stop()` or when the test process exits.
// Used by this package's contract tests and by the gateway's tests.

import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface EtcdTestServer {
  /** Client URL, e.g. "http://127.0.0.1:41234". */
  endpoint: string;
  /** A store URL for openStore with this server and `prefix` (default "test/"). */
  storeUrl(prefix?: string): string;
  /** Stops etcd (SIGKILL after 5 s of SIGTERM) and removes its data directory. */
  stop(): Promise<void>;
}

export interface EtcdTestServerOptions {
  /** The etcd binary. Default: `etcd` found on PATH. */
  binary?: string;
  /** How long to wait for etcd to answer /health, in milliseconds. Default 20000. */
  startTimeoutMs?: number;
}

/** The path of `etcd` on PATH, or undefined. */
export function findEtcdBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "etcd");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * For `describe(..., { skip })`: undefined when etcd is on PATH, else a loud reason to skip (also
 * printed to stderr). Throws instead when CI=true: CI must not skip the etcd tests silently.
 */
export function etcdTestsSkipReason(): string | undefined {
  if (findEtcdBinary() !== undefined) return undefined;
  const reason = "etcd is not on PATH: SKIPPING the etcd tests (Debian: apt-get install etcd-server)";
  if (process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  return reason;
}

export async function startEtcdForTests(options: EtcdTestServerOptions = {}): Promise<EtcdTestServer> {
  const binary = options.binary ?? findEtcdBinary();
  if (binary === undefined) throw new Error("etcd is not on PATH (Debian: apt-get install etcd-server)");
  // A free port can be taken by someone else before etcd binds it: try a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, options.startTimeoutMs ?? 20_000);
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

async function startOnce(binary: string, startTimeoutMs: number): Promise<EtcdTestServer> {
  const [clientPort, peerPort] = await freeLoopbackPorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), "vplane-etcd-"));
  const child = spawn(
    binary,
    [
      "--name=default",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-level=error",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const stop = async () => {
    process.off("exit", killOnExit);
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitUntilHealthy(clientUrl, child, startTimeoutMs);
  } catch (error) {
    await stop();
    throw new Error(`etcd did not start: ${(error as Error).message}\n${stderr}`);
  }
  return {
    endpoint: clientUrl,
    storeUrl: (prefix = "test/") => `etcd://127.0.0.1:${clientPort}/${prefix}`,
    stop,
  };
}

async function waitUntilHealthy(clientUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode})`);
    }
    try {
      const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { health?: unknown };
      if (body.health === "true") return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no healthy answer from ${clientUrl}/health within ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** `count` loopback ports nobody listens on right now (held together, so they differ). */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      return server;
    }),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
