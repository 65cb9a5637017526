import { listAll, writeInTransactions, type JsonValue, type Store, type TransactionOp } from "@vplane/store";
import type { WriteOptions } from "@vplane/store";
import type { ActiveMode, ControllerMode } from "@vplane/xive";

/** What a controller was created with. */
export interface ControllerSpec {
  mode: ControllerMode;
  /** NR_SERVERS as requested (the model clamps it). */
  nrServers: number;
  nrIrqs: number;
}

/** What a controller was created with (durable). */
export interface ControllerRecord extends ControllerSpec {
  vm: string;
  backend: "EMULATED" | "NATIVE";
  /** As given in the request (relative paths resolve in the data folder). */
  guestMemoryPath: string;
  guestMemoryBytes: number;
  createTime: string;
  createRequestId: string;
  /** The mode the guest selected (SelectMode), replayed before the rest. */
  selectedMode?: ActiveMode;
  /**
   * An imported controller: the byte length of the exported state kept with it, whose derived
   * configuration is the base the later records override (see createController).
   */
  importedStateBytes?: number;
  /** A RESET after the import tore down the queues the imported state holds. */
  importedQueuesReset?: boolean;
  /**
   * The byte lengths of the pre-copy deltas (issue 14) kept after the imported state, in the
   * order they apply to it.
   */
  importedDeltaBytes?: number[];
  /** A prepared import (PrepareImport): not the VM's until FinishImport; a restart drops it. */
  preparing?: boolean;
}

export interface VcpuRecord {
  vcpuId: number;
  server: number;
}

export interface SourceRecord {
  irq: number;
  lsi: boolean;
  asserted: boolean;
  /** The accepted SOURCE_CONFIG with its effective server, as a decimal string (u64). */
  kvmConfig?: string;
  /**
   * In place of kvmConfig: the guest's last H_INT_SET_SOURCE_CONFIG, as QEMU's EAT holds it (the
   * END asked for, which a KVM device may route elsewhere), made again as that hypercall
   * (hcall-records.ts).
   */
  hcall?: { target: number; priority: number; eisn: number; masked: boolean };
}

export interface QueueRecord {
  server: number;
  priority: number;
  flags: number;
  qshift: number;
  qaddr: string;
  qtoggle: number;
  qindex: number;
  /** Set by the guest's H_INT_SET_QUEUE_CONFIG (flags 1: ALWAYS_NOTIFY): made again as that hypercall. */
  byHypercall?: boolean;
}

export interface ControllerConfig {
  record: ControllerRecord;
  vcpus: VcpuRecord[];
  sources: SourceRecord[];
  queues: QueueRecord[];
  /** The exported state an imported controller was made from (record.importedStateBytes). */
  importedState?: Uint8Array;
  /** The pre-copy deltas applied to it after (record.importedDeltaBytes). */
  importedDeltas?: Uint8Array[];
}

/**
 * An imported state is kept in chunks of this size, two per transaction: etcd refuses requests
 * over 1.5 MiB by default (--max-request-bytes), and a store value is at most 1 MiB.
 */
const IMPORTED_CHUNK_BYTES = 512 * 1024;
const IMPORTED_CHUNKS_PER_TRANSACTION = 2;

const ROOT = "interrupt-controller";
const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** Store keys of the interrupt-controller service. */
export const configKeys = {
  controllers: `${ROOT}/controllers/`,
  controller: (vm: string) => `${ROOT}/controllers/${vm}`,
  configOf: (vm: string) => `${ROOT}/config/${vm}/`,
  vcpu: (vm: string, vcpuId: number) => `${ROOT}/config/${vm}/vcpu/${pad(vcpuId, 10)}`,
  source: (vm: string, irq: number) => `${ROOT}/config/${vm}/source/${pad(irq, 8)}`,
  queue: (vm: string, server: number, priority: number) =>
    `${ROOT}/config/${vm}/queue/${pad(server, 5)}-${priority}`,
  importedChunk: (vm: string, index: number) => `${ROOT}/config/${vm}/imported/${pad(index, 6)}`,
  deltaChunk: (vm: string, delta: number, index: number) =>
    `${ROOT}/config/${vm}/delta/${pad(delta, 6)}/${pad(index, 6)}`,
};

/** Puts of `bytes` in IMPORTED_CHUNK_BYTES pieces under `key(index)`. */
function chunkPuts(bytes: Uint8Array, key: (index: number) => string): TransactionOp[] {
  const ops: TransactionOp[] = [];
  for (let at = 0, index = 0; at < bytes.byteLength; at += IMPORTED_CHUNK_BYTES, index++) {
    ops.push({
      op: "put",
      key: key(index),
      value: bytes.subarray(at, Math.min(at + IMPORTED_CHUNK_BYTES, bytes.byteLength)),
    });
  }
  return ops;
}

/**
 * Durable configuration of the controllers: what a caller was told succeeded (creation, vCPU
 * connections, source initialisation and configuration, queue configuration, the selected mode),
 * by a device call or by the guest's configuring hypercalls.
 * Runtime state (PQ bits, queue indices, presenter registers) is not kept.
 */
export class ControllerConfigStore {
  constructor(private readonly store: Store) {}

  /**
   * Writes a new controller's record (StoreConflictError if the VM has one) and, for an imported
   * controller, the exported state it keeps as its base configuration: writing the state as it
   * came is what keeps ImportDeviceState inside a migration's downtime (tens of thousands of
   * per-source and per-queue records would not be). The record goes in the first transaction
   * with the first chunks and says how many bytes to expect, so a write cut short is detected on
   * load; a later transaction that fails takes the controller out again.
   */
  async createController(record: ControllerRecord, importedState?: Uint8Array): Promise<void> {
    const ops: TransactionOp[] = [
      {
        op: "put",
        key: configKeys.controller(record.vm),
        value: record as unknown as JsonValue,
        ifRevision: "absent",
      },
    ];
    ops.push(...chunkPuts(importedState ?? new Uint8Array(), (i) => configKeys.importedChunk(record.vm, i)));
    const first = 1 + IMPORTED_CHUNKS_PER_TRANSACTION;
    await this.store.transaction(ops.slice(0, first));
    try {
      for (let i = first; i < ops.length; i += IMPORTED_CHUNKS_PER_TRANSACTION)
        await this.store.transaction(ops.slice(i, i + IMPORTED_CHUNKS_PER_TRANSACTION));
    } catch (error) {
      await this.deleteController(record.vm).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Keeps a pre-copy delta after an imported controller's state (the record names it, and goes
   * in the last transaction: a write cut short leaves the record as it was, whose loader ignores
   * the chunks of a delta it does not name), then writes `record`; with no bytes, only the record.
   */
  async appendDelta(record: ControllerRecord, delta: Uint8Array, options?: WriteOptions): Promise<void> {
    const index = (record.importedDeltaBytes?.length ?? 1) - 1;
    const chunks = chunkPuts(delta, (i) => configKeys.deltaChunk(record.vm, index, i));
    const n = IMPORTED_CHUNKS_PER_TRANSACTION;
    let at = 0;
    for (; at + n < chunks.length; at += n) await this.store.transaction(chunks.slice(at, at + n), options);
    await this.store.transaction(
      [...chunks.slice(at), put(configKeys.controller(record.vm), record)],
      options,
    );
  }

  /** Every write so far durable (a "deferred" one too). */
  sync(): Promise<void> {
    return this.store.sync();
  }

  /*
   * The writes of each acknowledged change, for the RequestLedger to join to the transaction that
   * remembers the call's answer.
   */

  controllerWrite(record: ControllerRecord): TransactionOp {
    return put(configKeys.controller(record.vm), record);
  }

  vcpuWrite(vm: string, vcpu: VcpuRecord): TransactionOp {
    return put(configKeys.vcpu(vm, vcpu.vcpuId), vcpu);
  }

  sourceWrites(vm: string, sources: readonly SourceRecord[]): TransactionOp[] {
    return sources.map((s) => put(configKeys.source(vm, s.irq), s));
  }

  /**
   * A queue configuration; one with qshift 0 (a reset) is kept too, so that it overrides a queue
   * of an imported state, and replays as the reset it was.
   */
  queueWrite(vm: string, queue: QueueRecord): TransactionOp {
    return put(configKeys.queue(vm, queue.server, queue.priority), queue);
  }

  /** Removes every queue record of the VM (as it stands once the writes before it are in). */
  async queueDeletes(vm: string): Promise<TransactionOp[]> {
    return (await listAll(this.store, `${configKeys.configOf(vm)}queue/`)).map((e) => ({
      op: "delete",
      key: e.key,
    }));
  }

  async deleteController(vm: string): Promise<void> {
    const keys = await listAll(this.store, configKeys.configOf(vm));
    await writeInTransactions(
      this.store,
      keys.map((e) => ({ op: "delete", key: e.key })),
    );
    await this.store.delete(configKeys.controller(vm));
  }

  /** Every controller with its configuration, ordered by VM id. */
  async loadAll(): Promise<ControllerConfig[]> {
    const out: ControllerConfig[] = [];
    for (const entry of await listAll(this.store, configKeys.controllers)) {
      const record = entry.value as unknown as ControllerRecord;
      const config: ControllerConfig = { record, vcpus: [], sources: [], queues: [] };
      const chunks: Uint8Array[] = [];
      const deltas: Uint8Array[][] = [];
      for (const e of await listAll(this.store, configKeys.configOf(record.vm))) {
        const [kind, delta] = e.key.slice(configKeys.configOf(record.vm).length).split("/");
        if (kind === "vcpu") config.vcpus.push(e.value as unknown as VcpuRecord);
        else if (kind === "source") config.sources.push(e.value as unknown as SourceRecord);
        else if (kind === "queue") config.queues.push(e.value as unknown as QueueRecord);
        else if (kind === "imported" && e.value instanceof Uint8Array) chunks.push(e.value);
        else if (kind === "delta" && e.value instanceof Uint8Array)
          (deltas[Number(delta)] ??= []).push(e.value);
      }
      if (record.importedStateBytes !== undefined) config.importedState = Buffer.concat(chunks);
      const named = record.importedDeltaBytes ?? [];
      if (named.length > 0) config.importedDeltas = named.map((_, i) => Buffer.concat(deltas[i] ?? []));
      out.push(config);
    }
    return out;
  }
}

function put(key: string, value: object): TransactionOp {
  return { op: "put", key, value: value as unknown as JsonValue };
}
