// One host of the fleet: its interrupt-controller, iommu and migration services, each its own
// process (its entry point, as deployed) on fixed loopback ports, sharing the host's data folder
// (their configuration databases and the guest RAM files), as a Kubernetes node's pod does.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnServiceProcess, type ServiceProcess } from "@vplane/service-kit/testing";
import { freeLoopbackPorts } from "@vplane/store";
import { ADDR_ENV, serviceEntry, type HostServiceName } from "../host-service-entries.js";

// Benchmarks never delete: at ~100-200 creates/s the default 1,024 VMs (and, 1 VM in 4 having
// one, 1,024 SMMUs) per host fill up. Each host's services hold this many.
export const HOST_MAX_CONTROLLERS = 16_384;
export const HOST_MAX_SMMUS = 16_384;

export interface HostAddresses {
  interruptController: string;
  iommu: string;
  migration: string;
}

export class FleetHost {
  private readonly processes = new Map<HostServiceName, ServiceProcess>();

  private constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly addresses: HostAddresses,
  ) {}

  static async start(name: string): Promise<FleetHost> {
    const [interrupt, iommu, migration] = await freeLoopbackPorts(3);
    const dataDir = mkdtempSync(join(tmpdir(), `vplane-fleet-${name}-`));
    const host = new FleetHost(name, dataDir, {
      interruptController: `127.0.0.1:${interrupt}`,
      iommu: `127.0.0.1:${iommu}`,
      migration: `127.0.0.1:${migration}`,
    });
    await Promise.all((["interrupt-controller", "iommu", "migration"] as const).map((s) => host.launch(s)));
    return host;
  }

  /** Process ids of the host's services running now. */
  get pids(): number[] {
    return [...this.processes.values()].map((p) => p.pid);
  }

  /** kill -9 of one service, then (unless `restart` is false) the same service again on its address. */
  async crash(service: HostServiceName, restart = true): Promise<void> {
    await this.processes.get(service)?.kill("SIGKILL");
    this.processes.delete(service);
    if (restart) await this.launch(service);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.kill("SIGKILL")));
    this.processes.clear();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async launch(service: HostServiceName): Promise<void> {
    const address = {
      "interrupt-controller": this.addresses.interruptController,
      iommu: this.addresses.iommu,
      migration: this.addresses.migration,
    }[service];
    const env: Record<string, string> = {
      VPLANE_DATA_DIR: this.dataDir,
      [ADDR_ENV[service]]: address,
      ...(service === "interrupt-controller"
        ? { VPLANE_INTERRUPT_MAX_CONTROLLERS: String(HOST_MAX_CONTROLLERS) }
        : {}),
      ...(service === "iommu" ? { VPLANE_IOMMU_MAX_SMMUS: String(HOST_MAX_SMMUS) } : {}),
      ...(service === "migration"
        ? {
            VPLANE_MIGRATION_INTERRUPT_TARGET: this.addresses.interruptController,
            VPLANE_MIGRATION_IOMMU_TARGET: this.addresses.iommu,
          }
        : {}),
    };
    this.processes.set(service, await spawnServiceProcess(serviceEntry(service), env, 60_000));
  }
}
