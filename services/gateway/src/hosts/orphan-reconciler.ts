import { randomBytes } from "node:crypto";
import { StoreConflictError, type Store } from "@vplane/store";
import { toVplaneError, type Counter, type Logger } from "@vplane/service-kit";
import type { GatewayMetrics } from "../gateway-metrics.js";
import { registryKeys } from "../registry/registry-keys.js";
import { listAll, readRecord, toJson, type Versioned } from "../registry/typed-entry.js";
import type { HostRegistry } from "../registry/host-registry.js";
import type { VmRegistry } from "../registry/vm-registry.js";
import type { HostRecord } from "../schemas/host-schema.js";
import type { Vm } from "../schemas/vm-schema.js";
import { controllerName, smmuName } from "../vms/device-names.js";
import type { HostConnections } from "./host-clients.js";
import { deleteHostDevice, listHostDevices, type HostDevice } from "./host-devices.js";

export interface ReconcileTiming {
  /** How often the leading replica compares the hosts with the registry; 0: never. */
  intervalMs: number;
  /** How long a mismatch must last, seen in every round, before it is acted on. */
  graceMs: number;
}

/** What one round found and did (for tests and the log). */
export interface ReconcileReport {
  led: boolean;
  hostsListed: string[];
  hostsUnreachable: string[];
  suspects: number;
  removed: { host: string; device: HostDevice; reason: string }[];
  marked: { tenant: string; vm: string; missing: string[] }[];
}

interface Leader {
  owner: string;
  expiresAtMs: number;
}

/** A suspect mismatch: when it was first seen, and (vanished devices) the VM at that revision. */
interface Suspect {
  firstSeenMs: number;
  vm?: Versioned<Vm>;
}

const LEADER_KEY = "reconciler/leader";

/**
 * Keeps the hosts and the registry in agreement, for what a crash between a host call and the
 * registry write leaves behind. One replica at a time (a leader lease in the registry) lists every
 * host's devices with its own List RPCs, then reads the registry (in that order: a device is
 * created only after its VM is recorded, so a device listed first and missing from the registry
 * read after is not a create in flight), and:
 * - removes a device that no VM owns (no VM with its uid, or its VM recorded on another host with
 *   no operation running: a migration's leftover), once it has been seen so in every round for
 *   the grace period and is still so in a fresh registry read; each removal is an audit event (a
 *   log line with audit: "orphan-device-removed") and counted in a metric;
 * - marks FAILED (failure DEVICES_VANISHED) a READY VM with no operation running whose host no
 *   longer holds one of its devices, once that lasted the grace period with the VM unchanged
 *   (compare-and-swap on the revision first seen); deleting it then cleans the rest up.
 * A host that does not answer is skipped that round: nothing is concluded from silence.
 */
export class OrphanReconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly suspects = new Map<string, Suspect>();
  private readonly removedTotal: Counter<"host" | "kind">;
  private readonly vanishedTotal: Counter<"host">;

  constructor(
    private readonly deps: {
      store: Store;
      hosts: HostRegistry;
      vms: VmRegistry;
      connections: HostConnections;
      metrics: GatewayMetrics;
      log: Logger;
      instanceId: string;
    },
    private readonly timing: ReconcileTiming,
  ) {
    this.removedTotal = deps.metrics.registry.counter({
      name: "vplane_gateway_orphan_devices_removed_total",
      help: "devices removed from hosts because no VM in the registry owned them, by host and kind",
      labelNames: ["host", "kind"],
    });
    this.vanishedTotal = deps.metrics.registry.counter({
      name: "vplane_gateway_vms_devices_vanished_total",
      help: "VMs marked FAILED because their host no longer held their devices, by host",
      labelNames: ["host"],
    });
  }

  start(): void {
    if (this.timing.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      this.running ??= this.round()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "reconcile round failed"))
        .finally(() => (this.running = undefined));
    }, this.timing.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.resign();
  }

  /** One round (the timer runs them; tests call it directly). */
  async round(now = Date.now()): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      led: false,
      hostsListed: [],
      hostsUnreachable: [],
      suspects: 0,
      removed: [],
      marked: [],
    };
    if (!(await this.lead(now))) {
      this.suspects.clear(); // another replica leads: its own observations count, not ours
      return report;
    }
    report.led = true;
    const hosts = await this.deps.hosts.list();
    const listed = new Map<string, { host: HostRecord; devices: HostDevice[] }>();
    await Promise.all(
      hosts.map(async (host) => {
        try {
          listed.set(host.name, { host, devices: await listHostDevices(this.deps.connections, host) });
          report.hostsListed.push(host.name);
        } catch {
          report.hostsUnreachable.push(host.name);
        }
      }),
    );
    const vms = await this.vmsByUid();
    const seen = new Set<string>();
    const due: string[] = [];
    const observe = (key: string, suspect: Omit<Suspect, "firstSeenMs">) => {
      seen.add(key);
      const known = this.suspects.get(key);
      // A vanished-devices suspect whose VM changed since is a new observation.
      if (!known || (suspect.vm && known.vm?.revision !== suspect.vm.revision))
        this.suspects.set(key, { firstSeenMs: now, ...suspect });
      else if (now - known.firstSeenMs >= this.timing.graceMs) due.push(key);
    };
    for (const { host, devices } of listed.values()) {
      for (const device of devices) {
        if (orphanReason(device, host.name, vms.get(device.vmUid))) observe(orphanKey(host.name, device), {});
      }
    }
    for (const vm of vms.values()) {
      const on = listed.get(vm.value.host);
      if (!on || vm.value.state !== "READY" || vm.value.activeOperation) continue;
      if (missingDevices(vm.value, on.devices).length > 0) observe(vanishedKey(vm.value), { vm });
    }
    for (const key of this.suspects.keys()) if (!seen.has(key)) this.suspects.delete(key);
    report.suspects = this.suspects.size;
    if (due.length === 0) return report;

    const fresh = await this.vmsByUid();
    for (const { host, devices } of listed.values()) {
      for (const device of devices) {
        const key = orphanKey(host.name, device);
        if (!due.includes(key)) continue;
        const reason = orphanReason(device, host.name, fresh.get(device.vmUid));
        if (!reason) {
          this.suspects.delete(key);
          continue;
        }
        await this.remove(host, device, reason, report);
      }
    }
    for (const vm of vms.values()) {
      const key = vanishedKey(vm.value);
      if (!due.includes(key)) continue;
      await this.markVanished(this.suspects.get(key)!, listed.get(vm.value.host)!.devices, report);
    }
    return report;
  }

  private async remove(host: HostRecord, device: HostDevice, reason: string, report: ReconcileReport) {
    this.suspects.delete(orphanKey(host.name, device));
    let deleted: boolean;
    try {
      const requestId = `reconcile/${randomBytes(6).toString("hex")}`;
      deleted = await deleteHostDevice(this.deps.connections, host, device, requestId);
    } catch (error) {
      const cause = toVplaneError(error);
      this.deps.log.warn(
        { host: host.name, device: device.name, err: cause.message },
        "could not remove an orphan device",
      );
      return;
    }
    if (!deleted) return; // it went meanwhile: nothing was removed, nothing to audit
    this.removedTotal.inc({ host: host.name, kind: device.kind });
    report.removed.push({ host: host.name, device, reason });
    this.deps.log.warn(
      {
        audit: "orphan-device-removed",
        host: host.name,
        device: device.name,
        kind: device.kind,
        vmUid: device.vmUid,
        reason,
      },
      `removed ${device.name} from host ${host.name}: ${reason}`,
    );
  }

  private async markVanished(suspect: Suspect, devices: HostDevice[], report: ReconcileReport) {
    const before = suspect.vm!;
    const missing = missingDevices(before.value, devices);
    this.suspects.delete(vanishedKey(before.value));
    const message = `host '${before.value.host}' no longer holds ${missing.join(", ")}; delete the VM to clean up the rest`;
    try {
      await this.deps.vms.replace(before, {
        ...before.value,
        state: "FAILED",
        failure: { reason: "DEVICES_VANISHED", message, time: new Date().toISOString() },
        updateTime: new Date().toISOString(),
      });
    } catch {
      return; // the VM changed since it was first seen: a new observation starts next round
    }
    this.vanishedTotal.inc({ host: before.value.host });
    report.marked.push({ tenant: before.value.tenant, vm: before.value.name, missing });
    this.deps.log.warn(
      {
        audit: "vm-devices-vanished",
        tenant: before.value.tenant,
        vm: before.value.name,
        host: before.value.host,
        missing,
      },
      `VM ${before.value.name} marked FAILED: ${message}`,
    );
  }

  private async vmsByUid(): Promise<Map<string, Versioned<Vm>>> {
    const all = await listAll<Vm>(this.deps.store, registryKeys.allVms());
    return new Map(all.map((vm) => [vm.value.uid, vm]));
  }

  /** Takes or keeps the leader lease (three intervals long); false while another replica holds it. */
  private async lead(now: number): Promise<boolean> {
    const current = await readRecord<Leader>(this.deps.store, LEADER_KEY);
    if (current && current.value.owner !== this.deps.instanceId && current.value.expiresAtMs > now)
      return false;
    const lease: Leader = { owner: this.deps.instanceId, expiresAtMs: now + 3 * this.timing.intervalMs };
    try {
      await this.deps.store.put(LEADER_KEY, toJson(lease), { ifRevision: current?.revision ?? "absent" });
      return true;
    } catch (error) {
      if (error instanceof StoreConflictError) return false;
      throw error;
    }
  }

  private async resign(): Promise<void> {
    const current = await readRecord<Leader>(this.deps.store, LEADER_KEY).catch(() => undefined);
    if (current?.value.owner === this.deps.instanceId)
      await this.deps.store.delete(LEADER_KEY, { ifRevision: current.revision }).catch(() => false);
  }
}

/** Why `device` on `host` is an orphan, or undefined when its VM owns it there. */
function orphanReason(device: HostDevice, host: string, vm: Versioned<Vm> | undefined): string | undefined {
  if (!vm) return `no VM in the registry has uid ${device.vmUid}`;
  if (vm.value.host !== host && !vm.value.activeOperation)
    return `VM '${vm.value.name}' (${device.vmUid}) is recorded on host '${vm.value.host}' with no operation running`;
  return undefined;
}

/** The devices `vm` should have on its host that `devices` lacks. */
function missingDevices(vm: Vm, devices: HostDevice[]): string[] {
  const present = new Set(devices.filter((d) => d.vmUid === vm.uid).map((d) => d.name));
  const expected = [controllerName(vm), ...vm.iommu.smmus.map((s) => smmuName(vm, s.name))];
  return expected.filter((name) => !present.has(name));
}

const orphanKey = (host: string, device: HostDevice) => `orphan|${host}|${device.name}`;
const vanishedKey = (vm: Vm) => `vanished|${vm.tenant}/${vm.name}`;
