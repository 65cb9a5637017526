// The fleet on loopback (issue 16 point 1): a 3-member etcd cluster, gateway replicas as their
// own processes on it, hosts each with their own three service processes and data folder,
// registered by an admin with the capacity they declare. Everything can be killed with kill -9.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AccessTokens } from "@vplane/gateway";
import { EtcdCluster } from "@vplane/store";
import { spawnServiceProcess, type ServiceProcess } from "@vplane/service-kit/testing";
import { FleetHost, HOST_MAX_SMMUS } from "./fleet-host.js";

export interface FleetOptions {
  gateways: number;
  hosts: number;
  /** Registry prefix in etcd (several topologies can share one cluster). */
  prefix?: string;
  /** Gateway environment added to every replica's (default FLEET_TEST_GATEWAY_ENV). */
  gatewayEnv?: Record<string, string>;
}

/** Timings short enough for a test to see their effect in seconds (the benchmark keeps the defaults). */
export const FLEET_TEST_GATEWAY_ENV = {
  VPLANE_GATEWAY_REPLICA_LEASE_MS: "3000",
  VPLANE_GATEWAY_HOST_PROBE_MS: "500",
  VPLANE_GATEWAY_RECONCILE_MS: "1000",
  VPLANE_GATEWAY_ORPHAN_GRACE_MS: "4000",
  VPLANE_GATEWAY_OPERATION_TIMEOUT_MS: "60000",
};

const GATEWAY_MAIN = fileURLToPath(new URL("main.js", import.meta.resolve("@vplane/gateway")));

/** What the gateway replicas share: where their registry is, and the tokens they accept. */
export interface GatewaySetup {
  registryUrl: string;
  dir: string;
  /** Tenant "fleet": an admin and an operator token. */
  tokens: { admin: string; operator: string };
}

/** A tokens file in `dir` with an admin and an operator of tenant "fleet". */
export function writeFleetTokens(dir: string): GatewaySetup["tokens"] & { file: string } {
  const file = join(dir, "tokens.json");
  const tokens = AccessTokens.inMemoryAt(file);
  const admin = tokens.issue({ tenant: "fleet", role: "admin" }).token;
  const operator = tokens.issue({ tenant: "fleet", role: "operator" }).token;
  tokens.save();
  return { admin, operator, file };
}

/**
 * One gateway replica as its own process, no rate limit (the clients are the load); `registryUrl`
 * empty: its embedded SQLite registry.
 */
export function startGatewayProcess(
  dir: string,
  registryUrl: string,
  tokensFile: string,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  return spawnServiceProcess(
    GATEWAY_MAIN,
    {
      VPLANE_GATEWAY_ADDR: "127.0.0.1:0",
      ...(registryUrl ? { VPLANE_REGISTRY_URL: registryUrl } : {}),
      VPLANE_TOKENS_FILE: tokensFile,
      VPLANE_DATA_DIR: dir,
      VPLANE_GATEWAY_RATE_LIMIT: "0",
      ...env,
    },
    60_000,
  );
}

/** Registers every host through `gateway` (admin), declaring `perHostVms` VMs of room and the SMMUs its iommu holds. */
export async function registerHosts(
  gateway: string,
  adminToken: string,
  hosts: FleetHost[],
  perHostVms: number,
): Promise<void> {
  for (const host of hosts) {
    const response = await fetch(`${gateway}/v1/hosts`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: host.name,
        addresses: host.addresses,
        capacity: {
          vcpus: 4 * perHostVms,
          memoryBytes: perHostVms * 16 * 2 ** 20,
          vms: perHostVms,
          smmus: HOST_MAX_SMMUS,
        },
      }),
    });
    if (response.status >= 300)
      throw new Error(`registering ${host.name}: ${response.status} ${await response.text()}`);
  }
}

export class FleetTopology {
  private constructor(
    readonly etcd: EtcdCluster,
    readonly hosts: FleetHost[],
    readonly gateways: ServiceProcess[],
    readonly setup: GatewaySetup,
  ) {}

  /** Gateway URLs, replica i at index i (a killed one stays in the list, refusing connections). */
  get urls(): string[] {
    return this.gateways.map((g) => g.listening);
  }

  static async start(options: FleetOptions): Promise<FleetTopology> {
    const dir = mkdtempSync(join(tmpdir(), "vplane-fleet-"));
    const etcd = await EtcdCluster.start(3);
    const hosts: FleetHost[] = [];
    const gateways: ServiceProcess[] = [];
    try {
      hosts.push(
        ...(await Promise.all(Array.from({ length: options.hosts }, (_, i) => FleetHost.start(`h${i + 1}`)))),
      );
      const tokens = writeFleetTokens(dir);
      const registryUrl = etcd.storeUrl(options.prefix ?? "fleet/");
      for (let i = 0; i < options.gateways; i++) {
        const gatewayDir = mkdtempSync(join(dir, `gateway-${i}-`));
        gateways.push(
          await startGatewayProcess(
            gatewayDir,
            registryUrl,
            tokens.file,
            options.gatewayEnv ?? FLEET_TEST_GATEWAY_ENV,
          ),
        );
      }
      await registerHosts(gateways[0]!.listening, tokens.admin, hosts, 10_000);
      return new FleetTopology(etcd, hosts, gateways, { registryUrl, dir, tokens });
    } catch (error) {
      await Promise.all([...gateways.map((g) => g.kill()), ...hosts.map((h) => h.stop())]);
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.gateways.map((g) => g.kill()));
    await Promise.all(this.hosts.map((h) => h.stop()));
    await this.etcd.stop();
    rmSync(this.setup.dir, { recursive: true, force: true });
  }
}
