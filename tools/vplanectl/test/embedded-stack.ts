// An embedded gateway for the CLI's tests: the real interrupt-controller, iommu and migration
// services of one host (and of a second, for migrate) started in this process, the gateway over
// them, and vplanectl run as a process against it through REST only.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { gatewayOptionsSpec, startGateway, type RunningGateway } from "@vplane/gateway";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { migrationDescription } from "@vplane/migration";
import { loadConfig } from "@vplane/service-kit";
import { startServiceForTests, type ServiceUnderTest } from "@vplane/service-kit/testing";

const run = promisify(execFile);
/** The installed command (package.json "bin"), as `npx vplanectl` runs it. */
export const BIN = new URL("../../bin/vplanectl.js", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs vplanectl with `env` only (plus PATH and HOME); never rejects on a non-zero exit. */
export async function runVplanectl(
  args: string[],
  env: Record<string, string>,
  home: string,
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: home, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export interface EmbeddedStack {
  dataDir: string;
  gateway: RunningGateway;
  token: string;
  /** The second host's services (not registered: the migrate test registers it). */
  remote: ServiceUnderTest[];
  /** vplanectl against this gateway with the admin token, unless `env` says otherwise. */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** `cli`, asserting exit 0; the JSON it printed (-o json is added). */
  json<T = Record<string, unknown>>(args: string[]): Promise<T>;
  /** `vms create` of a 1-vCPU, 64 MiB XIVE VM (more flags in `extra`), waited for. */
  createVm(name: string, extra?: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** One host's services sharing `dir`, the migration service pointed at the other two. */
async function startHost(dir: string): Promise<ServiceUnderTest[]> {
  mkdirSync(dir, { recursive: true });
  const env = { VPLANE_DATA_DIR: dir };
  const interrupt = await startServiceForTests(interruptControllerDescription, env);
  const iommu = await startServiceForTests(iommuDescription, env);
  const migration = await startServiceForTests(migrationDescription, {
    ...env,
    VPLANE_MIGRATION_INTERRUPT_TARGET: interrupt.address,
    VPLANE_MIGRATION_IOMMU_TARGET: iommu.address,
  });
  return [interrupt, iommu, migration];
}

export async function startEmbeddedStack(options: { remoteHost?: boolean } = {}): Promise<EmbeddedStack> {
  const dataDir = mkdtempSync(join(tmpdir(), "vplanectl-test-"));
  const local = await startHost(dataDir);
  const remote = options.remoteHost ? await startHost(join(dataDir, "remote")) : [];
  const config = loadConfig(gatewayOptionsSpec, {
    argv: [],
    env: {
      VPLANE_DATA_DIR: join(dataDir, "gateway"),
      VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
      VPLANE_INTERRUPT_ADDR: local[0]!.address,
      VPLANE_IOMMU_ADDR: local[1]!.address,
      VPLANE_MIGRATION_ADDR: local[2]!.address,
    },
  });
  let token = "";
  const gateway = await startGateway(config, pino({ level: "silent" }), { onAdminToken: (t) => (token = t) });
  const cli = (
    args: string[],
    env: Record<string, string> = { VPLANE_URL: gateway.url, VPLANE_TOKEN: token },
  ) => runVplanectl(args, env, dataDir);
  return {
    dataDir,
    gateway,
    token,
    remote,
    cli,
    async json<T>(args: string[]) {
      const result = await cli([...args, "-o", "json"]);
      if (result.code !== 0)
        throw new Error(`vplanectl ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
      return JSON.parse(result.stdout) as T;
    },
    async createVm(name: string, extra: string[] = []) {
      const args = ["vms", "create", "--name", name, "--vcpus", "1", "--memory", "64MiB", "--mode", "xive"];
      const created = await cli([...args, ...extra, "--wait"]);
      if (created.code !== 0) throw new Error(`vms create ${name} exited ${created.code}: ${created.stderr}`);
    },
    async stop() {
      await gateway.close();
      for (const service of [...local, ...remote]) await service.stop(500);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
