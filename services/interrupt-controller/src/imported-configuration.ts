import { encodeKvmSourceConfig, isKvmPriorityValid, KVM_XIVE_EQ_ALWAYS_NOTIFY } from "@vplane/xive";
import type { ControllerBackend } from "./controller-backend.js";
import type { QueueRecord, SourceRecord, VcpuRecord } from "./controller-config-store.js";

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
 * KVM priority. Queues and targets a guest set up through hypercalls with other sizes or
 * priorities are left out, as they are for a created controller. Runtime state (PQ, queue
 * indices, presenter registers) is not durable here either.
 */
export function importedConfiguration(backend: ControllerBackend): ReplayedConfiguration {
  const vcpus = backend.connectedVcpus();
  const servers = [...new Set(vcpus.map((v) => v.server))].sort((a, b) => a - b);
  const queues: QueueRecord[] = [];
  if (backend.activeMode === "XIVE") {
    for (const server of servers) {
      for (let priority = 0; priority < 7; priority++) {
        const eq = backend.getQueueConfig(server, priority)?.eq;
        if (eq === undefined || eq.flags !== KVM_XIVE_EQ_ALWAYS_NOTIFY || eq.qshift !== KVM_QUEUE_SHIFT)
          continue;
        queues.push({
          server,
          priority,
          flags: eq.flags,
          qshift: eq.qshift,
          qaddr: eq.qaddr.toString(),
          qtoggle: 1,
          qindex: 0,
        });
      }
    }
  }
  return { vcpus, sources: importedSources(backend), queues };
}

/** The source records of importedConfiguration: what an imported controller's handlers start from. */
export function importedSources(backend: ControllerBackend): SourceRecord[] {
  const servers = new Set(backend.connectedVcpus().map((v) => v.server));
  const xive = backend.activeMode === "XIVE";
  return backend.initialisedSources().map(({ irq, lsi }): SourceRecord => {
    if (!xive) return { irq, lsi, asserted: false };
    const s = backend.getSource(irq);
    const targeted = !s.masked && isKvmPriorityValid(s.priority) && servers.has(s.server);
    return {
      irq,
      lsi,
      asserted: s.asserted,
      ...(targeted ? { kvmConfig: encodeKvmSourceConfig({ ...s, masked: false }).toString() } : {}),
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
