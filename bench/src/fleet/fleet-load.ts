// The fleet's workload: concurrent clients spread over the gateway replicas create VMs, migrate
// some, delete most and keep the rest, each answer written down in a ledger the audit checks
// against the registry and the hosts. Faults are injected at chosen points of progress.
import { LatencyRecorder } from "../latency-recorder.js";
import { FleetClient, type OperationJson, type RetryCounts } from "./fleet-client.js";

export interface FleetLoadOptions {
  /** Gateway URLs; client i starts on replica i mod their number. */
  replicas: string[];
  token: string;
  hosts: string[];
  clients: number;
  /** Acknowledged creates wanted. */
  creates: number;
  /** Successful migrations wanted (each VM whose number is a multiple of 10 is a candidate). */
  migrations: number;
  /** Every keepEvery-th VM is kept (not deleted), to be found present at the end. */
  keepEvery: number;
  /** Called after each acknowledged create with how many there are so far (faults hook in). */
  onProgress?: (acknowledgedCreates: number) => void;
}

export interface VmFacts {
  uid: string;
  host: string;
}

export interface FleetLedger {
  /** Every create acknowledged (its operation SUCCEEDED), by VM name. */
  created: Map<string, VmFacts>;
  /** Of those, the ones whose delete was acknowledged. */
  deleted: Map<string, VmFacts>;
  /** Creates that did not succeed, by final answer ("409 ...", "FAILED ABORTED/OPERATION_ABANDONED"). */
  createFailures: Map<string, number>;
  migrations: { succeeded: number; failed: Map<string, number> };
  /** VMs whose delete never succeeded (50 tries): still recorded, audited as kept. */
  undeletable: string[];
  /** From POST to the operation's SUCCEEDED, as the client saw it (ns). */
  createLatency: LatencyRecorder;
  retries: RetryCounts;
  elapsedMs: number;
}

const SMMU_EVERY = 4;

/** VM number n: 1 vCPU, 1 MiB, XIVE; every fourth with an SMMU. */
export const vmSpec = (name: string, n: number) => ({
  name,
  vcpus: 1,
  memoryBytes: 1 << 20,
  interruptController: { mode: "xive", nrServers: 4 },
  ...(n % SMMU_EVERY === 0 ? { iommu: { smmus: [{ name: "s0" }] } } : {}),
});

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** "FAILED UNAVAILABLE/REGISTRY_UNAVAILABLE at registry.commit": the step without its host, so failures group. */
const outcome = (op: OperationJson) => {
  const step = op.error?.details?.step?.replace(/ on host .*$/, "");
  return `${op.metadata.state} ${op.error?.code ?? ""}/${op.error?.reason ?? ""}${step ? ` at ${step}` : ""}`;
};

export type CreateOutcome = { ok: true; vm: VmFacts; latencyNs: number } | { ok: false; failure: string };

/** Creates VM number `n` and waits for its operation: the VM, or why not (HTTP answer or final state). */
export async function createVm(client: FleetClient, name: string, n: number): Promise<CreateOutcome> {
  const t0 = performance.now();
  const posted = await client.call<OperationJson>("POST", "/v1/vms", vmSpec(name, n));
  if (posted.status !== 202)
    return { ok: false, failure: `${posted.status} ${JSON.stringify(posted.body).slice(0, 120)}` };
  const op = await client.finished(posted.body.name);
  if (op.metadata.state !== "SUCCEEDED") return { ok: false, failure: outcome(op) };
  const vm = op.response as { uid: string; host: string };
  return { ok: true, vm: { uid: vm.uid, host: vm.host }, latencyNs: (performance.now() - t0) * 1e6 };
}

export async function runFleetLoad(options: FleetLoadOptions): Promise<FleetLedger> {
  const ledger: FleetLedger = {
    created: new Map(),
    deleted: new Map(),
    createFailures: new Map(),
    migrations: { succeeded: 0, failed: new Map() },
    undeletable: [],
    createLatency: new LatencyRecorder(),
    retries: { unavailable: 0, connectionFailures: 0, keyInProgress: 0 },
    elapsedMs: 0,
  };
  let next = 0;
  let migrationsInFlight = 0;
  const started = performance.now();

  /** Deletes `name` until its delete succeeds (404: already gone); false if it never did. */
  const remove = async (client: FleetClient, name: string): Promise<boolean> => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const answer = await client.call<OperationJson>("DELETE", `/v1/vms/${name}`);
      if (answer.status === 404) return true;
      if (answer.status === 202 && (await client.finished(answer.body.name)).metadata.state === "SUCCEEDED")
        return true;
      // 409: an operation still runs on it; FAILED: a host did not answer. Both end: try again.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return false;
  };

  const migrate = async (client: FleetClient, name: string, facts: VmFacts) => {
    const others = options.hosts.filter((h) => h !== facts.host);
    const destinationHost = others[Math.floor(Math.random() * others.length)]!;
    const answer = await client.call<OperationJson>("POST", `/v1/vms/${name}:migrate`, { destinationHost });
    if (answer.status !== 202) {
      count(ledger.migrations.failed, `${answer.status} ${JSON.stringify(answer.body).slice(0, 120)}`);
      return;
    }
    const op = await client.finished(answer.body.name);
    if (op.metadata.state === "SUCCEEDED") {
      ledger.migrations.succeeded++;
      facts.host = destinationHost;
    } else count(ledger.migrations.failed, outcome(op));
  };

  const runClient = async (index: number) => {
    const client = new FleetClient(options.replicas, options.token, index);
    // Until `creates` are acknowledged (a failed create does not count), at most twice that tried.
    for (let n = next++; ledger.created.size < options.creates && n < 2 * options.creates; n = next++) {
      const name = `vm-${String(n).padStart(5, "0")}`;
      const created = await createVm(client, name, n);
      if (!created.ok) {
        count(ledger.createFailures, created.failure);
        await remove(client, name); // a FAILED VM may remain: cleaned up like any other
        continue;
      }
      ledger.createLatency.record(created.latencyNs);
      const facts = created.vm;
      ledger.created.set(name, facts);
      options.onProgress?.(ledger.created.size);
      if (n % 10 === 0 && ledger.migrations.succeeded + migrationsInFlight < options.migrations) {
        migrationsInFlight++;
        await migrate(client, name, facts).finally(() => migrationsInFlight--);
      }
      if (n % options.keepEvery === 0) continue;
      if (await remove(client, name)) ledger.deleted.set(name, facts);
      else ledger.undeletable.push(name);
    }
    ledger.retries.unavailable += client.retries.unavailable;
    ledger.retries.connectionFailures += client.retries.connectionFailures;
    ledger.retries.keyInProgress += client.retries.keyInProgress;
  };

  await Promise.all(Array.from({ length: options.clients }, (_, i) => runClient(i)));
  ledger.elapsedMs = performance.now() - started;
  return ledger;
}
