import { encodeKvmSourceConfig, isKvmPriorityValid, KVM_XIVE_EQ_ALWAYS_NOTIFY } from "@vplane/xive";
import type { ControllerBackend } from "./controller-backend.js";
import type { ControllerRecord, QueueRecord, SourceRecord, VcpuRecord } from "./controller-config-store.js";

/** The configuration a restart replays (see ControllerConfigStore). */
export interface ReplayedConfiguration {
  vcpus: VcpuRecord[];
  sources: SourceRecord[];
  queues: QueueRecord[];
}

/** KVM's EQ_CONFIG takes 64 KiB queues with ALWAYS_NOTIFY only (xive.md §1.4). */
const KVM_QUEUE_SHIFT = 16;

/**
 * The durable configuration of a controller made by ImportDeviceState. The source host's records
 * do not travel with the state, so they are derived from it, keeping what a restart can replay
 * through the KVM device calls (xive.md §1.2-§1.4): the vCPU connections, every source with its
 * kind and level, the queues EQ_CONFIG accepts, and the targeting of each unmasked source at a
 * KVM priority. For a guest that selected XIVE (its hypercalls answer), a queue EQ_CONFIG refuses
 * (another size, no ALWAYS_NOTIFY: the guest's H_INT_SET_QUEUE_CONFIG on an emulated controller)
 * is kept as the guest's H_INT_SET_QUEUE_CONFIG, made again as for a created controller
 * (hcall-records.ts); a source routed elsewhere than QEMU's END keeps that END (importedSources).
 * Runtime state (PQ, queue indices, presenter registers) is not durable here either.
 */
export function importedConfiguration(
  backend: ControllerBackend,
  record: Pick<ControllerRecord, "selectedMode">,
): ReplayedConfiguration {
  const hypercalls = record.selectedMode === "XIVE";
  const vcpus = backend.connectedVcpus();
  const servers = [...new Set(vcpus.map((v) => v.server))].sort((a, b) => a - b);
  const queues: QueueRecord[] = [];
  if (backend.activeMode === "XIVE") {
    for (const server of servers) {
      for (let priority = 0; priority < 7; priority++) {
        const eq = backend.getQueueConfig(server, priority)?.eq;
        if (eq === undefined) continue;
        const kvm = eq.flags === KVM_XIVE_EQ_ALWAYS_NOTIFY && eq.qshift === KVM_QUEUE_SHIFT;
        if (!kvm && !hypercalls) continue;
        queues.push({
          server,
          priority,
          flags: eq.flags,
          qshift: eq.qshift,
          qaddr: eq.qaddr.toString(),
          qtoggle: 1,
          qindex: 0,
          ...(kvm ? {} : { byHypercall: true }),
        });
      }
    }
  }
  return { vcpus, sources: importedSources(backend), queues };
}

/**
 * The source records of importedConfiguration: what an imported controller's handlers start from.
 * A source the device routes elsewhere than QEMU's END (requested_ends) is recorded with that
 * END, which a restart's replay gives the device as the import did (restoreSourceConfig).
 */
export function importedSources(backend: ControllerBackend): SourceRecord[] {
  const servers = new Set(backend.connectedVcpus().map((v) => v.server));
  const xive = backend.activeMode === "XIVE";
  const requested = xive ? backend.requestedEnds() : new Map<number, number>();
  return backend.initialisedSources().map(({ irq, lsi }): SourceRecord => {
    if (!xive) return { irq, lsi, asserted: false };
    const s = backend.getSource(irq);
    const end = requested.get(irq);
    const asked = end === undefined ? s : { ...s, server: end >>> 3, priority: end & 7 };
    const targeted = !s.masked && isKvmPriorityValid(asked.priority) && servers.has(asked.server);
    return {
      irq,
      lsi,
      asserted: s.asserted,
      ...(targeted ? { kvmConfig: encodeKvmSourceConfig({ ...asked, masked: false }).toString() } : {}),
    };
  });
}

/**
 * What a restart replays for an imported controller: the configuration derived from its state,
 * with every record written after the import in place of the derived one of the same vCPU,
 * source or queue, and without the derived queues once a RESET tore them down.
 */
export function withLaterRecords(
  base: ReplayedConfiguration,
  later: ReplayedConfiguration,
  queuesReset: boolean,
): ReplayedConfiguration {
  const merge = <T>(derived: T[], written: T[], key: (record: T) => string | number): T[] => {
    const byKey = new Map(derived.map((record) => [key(record), record]));
    for (const record of written) byKey.set(key(record), record);
    return [...byKey.values()];
  };
  return {
    vcpus: merge(base.vcpus, later.vcpus, (v) => v.vcpuId),
    sources: merge(base.sources, later.sources, (s) => s.irq),
    queues: merge(queuesReset ? [] : base.queues, later.queues, (q) => `${q.server}-${q.priority}`),
  };
}
