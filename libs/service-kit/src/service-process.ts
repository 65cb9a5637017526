// A service started as its own process (its entry point, as deployed), for tests that kill it
// outright (kill -9): what it was doing dies with it, as in a crash. Exported through
// "@vplane/service-kit/testing".
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

// One exit hook for all of them (a fleet test runs a score of processes).
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface ServiceProcess {
  /** What the process said it listens on: host:port (gRPC services) or a URL (the gateway). */
  readonly listening: string;
  readonly pid: number;
  /** Sends `signal` (default SIGKILL) unless it already exited, and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs `entry` (a service's main.js) with Node and `env` (PATH added), and resolves once it logs
 * "listening on ..." (every vplane entry point does, at level info, once it accepts calls).
 * Rejects with its last output if it exits first or takes longer than `timeoutMs`. The process
 * is killed when the test process exits.
 */
export async function spawnServiceProcess(
  entry: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env["PATH"] ?? "", VPLANE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  const exited = once(child, "exit").then(() => running.delete(child));
  let output = "";
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8000));
  child.stderr.on("data", keep);
  const listening = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${entry} did not say it listens within ${timeoutMs} ms: ${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      keep(chunk);
      const match = /listening on ([^\s"]+)/.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.off("exit", onExit);
      resolve(match[1]!);
    };
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited (${code ?? signal}) before listening: ${output}`));
    };
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
  child.stdout.resume(); // its logs are drained, not kept
  return {
    listening,
    pid: child.pid!,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
