// vplane as containers on a network a test creates: hosts (interrupt-controller, iommu and
// migration, sharing a host folder as /data so the test can read guest RAM) and a gateway,
// driven from this machine through the gateway's REST API.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GenericContainer,
  Network,
  Wait,
  type StartedNetwork,
  type StartedTestContainer,
} from "testcontainers";

export interface ContainerHost {
  /** The host folder mounted as the services' /data. */
  dataDir: string;
  interrupts: StartedTestContainer;
  /** Addresses of its services on the test network. */
  addresses: { interruptController: string; iommu: string; migration: string };
}

export class ContainerStack {
  private readonly containers: StartedTestContainer[] = [];
  private readonly folders: string[] = [];

  private constructor(
    private readonly image: string,
    private readonly network: StartedNetwork,
  ) {}

  /** A stack of containers from the image tagged `image` (see buildVplaneImage). */
  static async start(image: string): Promise<ContainerStack> {
    return new ContainerStack(image, await new Network().start());
  }

  /** One host's device and migration services; `prefix` names them on the network. */
  async host(prefix: string): Promise<ContainerHost> {
    const dataDir = mkdtempSync(join(tmpdir(), `vplane-${prefix}-`));
    chmodSync(dataDir, 0o777); // the services run as uid 10001
    this.folders.push(dataDir);
    const addresses = {
      interruptController: `${prefix}-interrupt:50051`,
      iommu: `${prefix}-iommu:50052`,
      migration: `${prefix}-migration:50053`,
    };
    const data = { source: dataDir, target: "/data", mode: "rw" as const };
    const interrupts = await this.run(`${prefix}-interrupt`, "interrupt-controller", 50051, {}, data);
    await this.run(`${prefix}-iommu`, "iommu", 50052, {}, data);
    await this.run(
      `${prefix}-migration`,
      "migration",
      50053,
      {
        VPLANE_MIGRATION_INTERRUPT_TARGET: addresses.interruptController,
        VPLANE_MIGRATION_IOMMU_TARGET: addresses.iommu,
      },
      data,
    );
    return { dataDir, interrupts, addresses };
  }

  /** The gateway, with `host` as its default host "local"; a REST client with its admin token. */
  async gateway(host: ContainerHost): Promise<GatewayClient> {
    const container = await this.run("gateway", "gateway", 8080, {
      VPLANE_INTERRUPT_ADDR: host.addresses.interruptController,
      VPLANE_IOMMU_ADDR: host.addresses.iommu,
      VPLANE_MIGRATION_ADDR: host.addresses.migration,
    });
    const base = `http://${container.getHost()}:${container.getMappedPort(8080)}`;
    // The gateway prints its first-start admin token on stderr, once.
    const token = await until("the gateway's first-start token", () => {
      const logs = spawnSync("docker", ["logs", container.getId()], { encoding: "utf8" });
      return Promise.resolve(/\b(vpl_[A-Za-z0-9_-]+)/.exec(`${logs.stdout}${logs.stderr}`)?.[1]);
    });
    return new GatewayClient(base, token);
  }

  async stop(): Promise<void> {
    for (const container of this.containers.reverse()) {
      await container.stop({ timeout: 5000 }).catch(() => undefined);
    }
    await this.network.stop().catch(() => undefined);
    for (const folder of this.folders) rmSync(folder, { recursive: true, force: true });
  }

  private async run(
    alias: string,
    service: string,
    port: number,
    env: Record<string, string>,
    data?: { source: string; target: string; mode: "rw" },
  ): Promise<StartedTestContainer> {
    // A new builder per container: testcontainers' builders are mutable, and a shared one would
    // hand every later container the earlier ones' aliases, mounts and environment.
    let container = new GenericContainer(this.image)
      .withNetwork(this.network)
      .withNetworkAliases(alias)
      .withEnvironment({ VPLANE_SERVICE: service, VPLANE_LOG_LEVEL: "warn", ...env })
      .withExposedPorts(port)
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(60_000);
    if (data) container = container.withBindMounts([data]);
    const started = await container.start();
    this.containers.push(started);
    return started;
  }
}

export class GatewayClient {
  constructor(
    readonly base: string,
    readonly token: string,
  ) {}

  /** A REST call that must succeed; its JSON answer. */
  async rest(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path} → ${response.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Waits for an operation ("operations/...") to finish; its final state. */
  finished(operation: Record<string, unknown>, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    return until(
      `${String(operation["name"])}`,
      async () => {
        const current = await this.rest("GET", `/v1/${String(operation["name"])}`);
        return current["done"] ? current : undefined;
      },
      timeoutMs,
    );
  }
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}
