// After the load: the ledger of acknowledged answers checked against the registry (read from
// etcd itself) and against each host's own List RPCs. Every rule of issue 16 point 1 is one list
// of what breaks it, empty when the fleet is right.
import { credentials } from "@grpc/grpc-js";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { listAll, type Store } from "@vplane/store";
import type { HostAddresses } from "./fleet-host.js";
import type { FleetLedger } from "./fleet-load.js";

interface RegistryVm {
  name: string;
  uid: string;
  host: string;
  state: string;
  vcpus: number;
  memoryBytes: number;
  iommu: { smmus: { name: string }[] };
}

interface Usage {
  vcpus: number;
  memoryBytes: number;
  vms: number;
  smmus?: number;
}

export interface FleetAudit {
  /** Creates acknowledged and never deleted: they must be present. */
  acknowledged: number;
  present: number;
  /** Acknowledged, not deleted, and missing from the registry or from its host. */
  lost: string[];
  /** A VM whose devices are on more than one host. */
  duplicated: string[];
  /** Devices no VM in the registry owns on that host ("host device"). */
  orphans: string[];
  /** Acknowledged deletes that left something on a host or in the registry. */
  leftovers: string[];
  /** Hosts whose usage record differs from the VMs the registry places on them. */
  usageMismatches: string[];
  /** Operations not done. */
  running: string[];
  /** VMs recorded on one host with devices on another. */
  misplaced: string[];
}

/** Every device (resource name) each host holds, by host name: all pages of both List RPCs. */
export async function listDevices(hosts: { name: string; addresses: HostAddresses }[]) {
  const devices = new Map<string, string[]>();
  for (const host of hosts) {
    const interrupt = new InterruptControllerServiceClient(
      host.addresses.interruptController,
      credentials.createInsecure(),
    );
    const iommu = new IommuServiceClient(host.addresses.iommu, credentials.createInsecure());
    const names: string[] = [];
    try {
      let pageToken = "";
      do {
        const page = await unaryCall(interrupt.listControllers.bind(interrupt), {
          pageSize: 1000,
          pageToken,
        });
        names.push(...page.controllers.map((c) => c.name));
        pageToken = page.nextPageToken;
      } while (pageToken);
      do {
        const page = await unaryCall(iommu.listSmmus.bind(iommu), { parent: "", pageSize: 1000, pageToken });
        names.push(...page.smmus.map((s) => s.name));
        pageToken = page.nextPageToken;
      } while (pageToken);
    } finally {
      interrupt.close();
      iommu.close();
    }
    devices.set(host.name, names);
  }
  return devices;
}

const uidOf = (device: string) => device.split("/")[1]!;
const expectedDevices = (vm: RegistryVm) => [
  `vms/${vm.uid}/controller`,
  ...vm.iommu.smmus.map((s) => `vms/${vm.uid}/smmus/${s.name}`),
];

export async function auditFleet(
  store: Store,
  hosts: { name: string; addresses: HostAddresses }[],
  ledger: FleetLedger,
): Promise<FleetAudit> {
  const devices = await listDevices(hosts);
  const vms = (await listAll(store, "vms/")).map((e) => e.value as unknown as RegistryVm);
  const usage = new Map(
    (await listAll(store, "host-usage/")).map((e) => [
      e.key.slice("host-usage/".length),
      e.value as unknown as Usage,
    ]),
  );
  const operations = await listAll(store, "operations/");
  const vmByUid = new Map(vms.map((vm) => [vm.uid, vm]));
  const vmByName = new Map(vms.map((vm) => [vm.name, vm]));
  const hostsOf = new Map<string, Set<string>>(); // uid → hosts holding any of its devices
  const audit: FleetAudit = {
    acknowledged: 0,
    present: 0,
    lost: [],
    duplicated: [],
    orphans: [],
    leftovers: [],
    usageMismatches: [],
    running: [],
    misplaced: [],
  };
  for (const [host, names] of devices) {
    for (const device of names) {
      const uid = uidOf(device);
      hostsOf.set(uid, (hostsOf.get(uid) ?? new Set()).add(host));
      const vm = vmByUid.get(uid);
      if (!vm) audit.orphans.push(`${host} ${device}`);
      else if (vm.host !== host && !audit.misplaced.includes(vm.name)) audit.misplaced.push(vm.name);
    }
  }
  for (const [uid, on] of hostsOf) if (on.size > 1) audit.duplicated.push(`${uid} on ${[...on].join(", ")}`);
  for (const [name, facts] of ledger.created) {
    if (ledger.deleted.has(name)) {
      const on = hostsOf.get(facts.uid);
      if (on || vmByName.get(name)?.uid === facts.uid)
        audit.leftovers.push(
          `${name} (${facts.uid})${on ? ` on ${[...on].join(", ")}` : " in the registry"}`,
        );
      continue;
    }
    audit.acknowledged++;
    const vm = vmByName.get(name);
    const held = new Set(devices.get(vm?.host ?? "") ?? []);
    if (vm && vm.uid === facts.uid && vm.state === "READY" && expectedDevices(vm).every((d) => held.has(d)))
      audit.present++;
    else
      audit.lost.push(`${name} (${facts.uid}): ${vm ? `${vm.state} on ${vm.host}` : "not in the registry"}`);
  }
  for (const host of hosts) {
    const placed = vms.filter((vm) => vm.host === host.name);
    const want: Usage = {
      vcpus: placed.reduce((sum, vm) => sum + vm.vcpus, 0),
      memoryBytes: placed.reduce((sum, vm) => sum + vm.memoryBytes, 0),
      vms: placed.length,
      smmus: placed.reduce((sum, vm) => sum + vm.iommu.smmus.length, 0),
    };
    const have = usage.get(host.name) ?? { vcpus: 0, memoryBytes: 0, vms: 0 };
    const same = (["vcpus", "memoryBytes", "vms", "smmus"] as const).every(
      (field) => (have[field] ?? 0) === want[field],
    );
    if (!same)
      audit.usageMismatches.push(
        `${host.name}: recorded ${JSON.stringify(have)}, placed ${JSON.stringify(want)}`,
      );
  }
  for (const op of operations) {
    const value = op.value as { name: string; done: boolean; metadata: { state: string } };
    if (!value.done) audit.running.push(`${value.name} ${value.metadata.state}`);
  }
  return audit;
}

/** True when no rule is broken. */
export function auditClean(audit: FleetAudit): boolean {
  return (
    audit.lost.length +
      audit.duplicated.length +
      audit.orphans.length +
      audit.leftovers.length +
      audit.usageMismatches.length +
      audit.running.length +
      audit.misplaced.length ===
    0
  );
}
