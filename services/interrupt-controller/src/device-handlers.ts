import type * as pb from "@vplane/proto/gen/vplane/interrupt/v1/device";
import { VplaneError, requiredField, toVplaneError, type Applied } from "@vplane/service-kit";
import {
  HcallOpcode,
  HcallReturn,
  decodeKvmSourceConfig,
  encodeKvmSourceConfig,
  type HcallResult,
  type KvmXiveEq,
} from "@vplane/xive";
import { noTriggers, type TriggerCounts } from "./controller-backend.js";
import type { QueueRecord, SourceRecord } from "./controller-config-store.js";
import type { ControllerEntry, ControllerRegistry } from "./controller-registry.js";
import { configuresController, hcallName, hcallQueueRecord, hcallSourceRecord } from "./hcall-records.js";
import { activeModeOf, controllerMessage, isManagementPage, isStore, rtasCallOf } from "./proto-mapping.js";
import { LIMITS } from "./service-limits.js";

function checkBatch(length: number, max: number, field: string): void {
  if (length === 0 || length > max) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: length === 0 ? "BATCH_EMPTY" : "BATCH_TOO_LARGE",
      message: `${field} must hold 1 to ${max} entries, got ${length}`,
      field,
    });
  }
}

/** The first failed entry of a batch: its error, with the entry's index and field path. */
function batchFailure(error: unknown, index: number, field: string): VplaneError {
  const e = toVplaneError(error);
  return new VplaneError({
    code: e.code,
    reason: e.reason,
    message: `${field}[${index}]: ${e.message}`,
    errno: e.errno,
    hcallReturnCode: e.hcallReturnCode,
    field: e.field ? `${field}[${index}].${e.field}` : `${field}[${index}]`,
    batchIndex: index,
  });
}

/** The undos of a batch's applied entries, run latest first. */
class Undo {
  private readonly steps: (() => void)[] = [];
  push(step: (() => void) | undefined): void {
    if (step) this.steps.push(step);
  }
  readonly run = (): void => {
    for (const step of [...this.steps].reverse()) step();
  };
}

/**
 * What puts a source's routing back (KVM SOURCE_CONFIG set with the one it has now, and its
 * durable record as it is): undefined when it has none to read (its configuration will fail).
 * The queue slot a routing took stays taken, as KVM's count (xive_try_pick_queue) would.
 */
function sourceRestore(entry: ControllerEntry, records: Map<number, SourceRecord>, irq: number) {
  let config: bigint;
  try {
    config = encodeKvmSourceConfig(entry.backend.getSource(irq));
  } catch {
    return undefined;
  }
  const record = records.get(irq);
  return () => {
    entry.backend.configureSource(irq, config);
    if (record) records.set(irq, record);
    else records.delete(irq);
  };
}

/**
 * What puts a queue back as it is now (EQ_CONFIG set with its page, toggle and index, or
 * qshift 0: none): undefined when it cannot be read (its configuration will fail). An
 * escalation the new page attached stays attached (KVM keeps it until RESET).
 */
function queueRestore(entry: ControllerEntry, server: number, priority: number) {
  let eq: KvmXiveEq;
  try {
    eq = entry.backend.getQueueConfig(server, priority)?.eq ?? NO_QUEUE;
  } catch {
    return undefined;
  }
  return () => entry.backend.configureQueue(server, priority, eq);
}

/** A record whose source CTRL RESET masks: one routed (unmasked) by a device call or a hypercall. */
function unmaskedBy(record: SourceRecord): boolean {
  if (record.hcall !== undefined) return !record.hcall.masked;
  return record.kvmConfig !== undefined && !decodeKvmSourceConfig(BigInt(record.kvmConfig)).masked;
}

/** EQ_CONFIG set with qshift 0: the queue has no page. */
const NO_QUEUE: KvmXiveEq = { flags: 0, qshift: 0, qaddr: 0n, qtoggle: 0, qindex: 0 };

/**
 * The device operations: each handler finds the controller, calls its backend, makes
 * acknowledged configuration durable, and translates messages; the logic is in the backend.
 * `onTriggers` sees what became of the triggers of every call that makes them (TriggerSources,
 * EsbAccess trigger and inject stores, SetLsiLevel asserts), once per call.
 */
export function deviceHandlers(registry: ControllerRegistry, onTriggers: (counts: TriggerCounts) => void) {
  const durable = registry.durable;

  /** Runs a mutating call once per request_id (RequestLedger): a retry gets the first answer. */
  const once = <T>(
    entry: ControllerEntry,
    request: { requestId: string },
    method: string,
    apply: () => Applied<T>,
  ): Promise<T> =>
    registry.ledger.run({ scope: entry.record.vm, requestId: request.requestId, method, request }, apply);

  /**
   * The source records after a RESET, written after `before`: each source `dropped` picks loses
   * its configuration; no queue is left (ControllerRegistry.resetQueues).
   */
  const resetRecords = (entry: ControllerEntry, dropped: (record: SourceRecord) => boolean) => {
    const records = registry.sourceRecords(entry);
    const changed: SourceRecord[] = [];
    for (const record of records.values()) {
      if (!dropped(record)) continue;
      const { kvmConfig: _kvm, hcall: _hcall, ...rest } = record;
      records.set(record.irq, rest);
      changed.push(rest);
    }
    return registry.resetQueues(entry, durable.sourceWrites(entry.record.vm, changed));
  };

  /**
   * A guest's configuring H_INT_* call, made durable as a device call is (RequestLedger, in
   * order with the controller's other changes): what it set is recorded, and a restart makes the
   * same calls again (hcall-records.ts). A call whose record cannot be written is taken back
   * (hcallUndo; not H_INT_RESET, which has no inverse in the device, as CTRL RESET) and answers
   * UNAVAILABLE STORE_UNAVAILABLE with H_HARDWARE in its details: the code QEMU answers when the
   * device behind a hypercall fails, for a VMM that answers the guest rather than retry.
   */
  const configuringHcall = async (
    entry: ControllerEntry,
    request: pb.RawHypercallRequest,
    opcode: number,
  ): Promise<HcallResult> => {
    const call = { scope: entry.record.vm, requestId: "", method: "RawHypercall", request };
    try {
      return await registry.ledger.run<HcallResult>(call, () => {
        const undo = entry.backend.hcallUndo(opcode, request.args);
        const result = entry.backend.hcall(request.server, opcode, request.args);
        if (result.returnCode !== HcallReturn.H_SUCCESS) return { answer: result };
        return { answer: result, ...hcallWrites(entry, opcode, request.args, undo) };
      });
    } catch (error) {
      const e = toVplaneError(error);
      if (e.reason !== "STORE_UNAVAILABLE") throw error;
      throw new VplaneError({
        code: e.code,
        reason: e.reason,
        message: e.message,
        hcallReturnCode: HcallReturn.H_HARDWARE,
      });
    }
  };

  /** The records of a configuring hypercall that succeeded, and its undo (the record's too). */
  const hcallWrites = (
    entry: ControllerEntry,
    opcode: number,
    args: readonly bigint[],
    undo: (() => void) | undefined,
  ): Pick<Applied<HcallResult>, "writes" | "undo"> => {
    const vm = entry.record.vm;
    if (opcode === HcallOpcode.H_INT_RESET) return { writes: resetRecords(entry, () => true) };
    if (opcode === HcallOpcode.H_INT_SET_QUEUE_CONFIG)
      return { writes: [durable.queueWrite(vm, hcallQueueRecord(args))], undo };
    const records = registry.sourceRecords(entry);
    const irq = Number(BigInt.asUintN(64, args[1] ?? 0n));
    const previous = records.get(irq) ?? { irq, lsi: false, asserted: false };
    const record = hcallSourceRecord(previous, args, entry.backend.getSource(irq).eisn);
    records.set(irq, record);
    return {
      writes: durable.sourceWrites(vm, [record]),
      undo: () => {
        records.set(irq, previous);
        undo?.();
      },
    };
  };

  return {
    connectVcpu: async (request: pb.ConnectVcpuRequest): Promise<pb.ConnectVcpuResponse> => {
      const entry = registry.require(request.name);
      return once(entry, request, "ConnectVcpu", () => {
        entry.backend.connectVcpu(request.vcpuId, request.server);
        return {
          answer: { controller: controllerMessage(entry) },
          writes: [durable.vcpuWrite(entry.record.vm, { vcpuId: request.vcpuId, server: request.server })],
        };
      });
    },

    selectMode: async (request: pb.SelectModeRequest): Promise<pb.SelectModeResponse> => {
      const entry = registry.require(request.name);
      const mode = activeModeOf(request.mode);
      return once(entry, request, "SelectMode", () => {
        entry.backend.selectMode(mode);
        const write = registry.setSelectedMode(entry, mode);
        return { answer: { controller: controllerMessage(entry) }, writes: [write] };
      });
    },

    initSources: async (request: pb.InitSourcesRequest): Promise<pb.InitSourcesResponse> => {
      const entry = registry.require(request.name);
      checkBatch(request.sources.length, LIMITS.maxConfigBatch, "sources");
      return once<pb.InitSourcesResponse>(entry, request, "InitSources", () => {
        const records = registry.sourceRecords(entry);
        // Entries apply in order, as successive KVM ioctls would: a source named twice ends as its
        // last entry, and is written once (a store transaction writes a key at most once).
        const changed = new Map<number, SourceRecord>();
        let applied = 0;
        let failure: VplaneError | undefined;
        for (let i = 0; i < request.sources.length; i++) {
          const s = request.sources[i]!;
          try {
            entry.backend.initSource(s.irq, s.levelSensitive, s.asserted);
          } catch (error) {
            failure = batchFailure(error, i, "sources");
            break;
          }
          const previous = records.get(s.irq);
          const lsi = (previous?.lsi ?? false) || s.levelSensitive;
          const record: SourceRecord = {
            irq: s.irq,
            lsi,
            asserted: (previous?.asserted ?? false) || (lsi && s.asserted),
          };
          records.set(s.irq, record);
          changed.set(s.irq, record);
          applied++;
        }
        const writes = durable.sourceWrites(entry.record.vm, [...changed.values()]);
        return failure ? { error: failure, writes } : { answer: { applied }, writes };
      });
    },

    configureSources: async (request: pb.ConfigureSourcesRequest): Promise<pb.ConfigureSourcesResponse> => {
      const entry = registry.require(request.name);
      checkBatch(request.sources.length, LIMITS.maxConfigBatch, "sources");
      return once<pb.ConfigureSourcesResponse>(entry, request, "ConfigureSources", () => {
        const records = registry.sourceRecords(entry);
        const servers: number[] = [];
        // Entries apply in order, as successive KVM ioctls would: a source named twice ends as its
        // last entry, and is written once (a store transaction writes a key at most once).
        const changed = new Map<number, SourceRecord>();
        let failure: VplaneError | undefined;
        const undo = new Undo();
        for (let i = 0; i < request.sources.length; i++) {
          const s = request.sources[i]!;
          const restore = sourceRestore(entry, records, s.irq);
          let server: number;
          try {
            server = entry.backend.configureSource(s.irq, s.kvmConfig);
          } catch (error) {
            failure = batchFailure(error, i, "sources");
            break;
          }
          undo.push(restore);
          servers.push(server);
          const config = decodeKvmSourceConfig(s.kvmConfig);
          const effective = config.masked ? s.kvmConfig : encodeKvmSourceConfig({ ...config, server });
          const { hcall: _replaced, ...previous } = records.get(s.irq) ?? {
            irq: s.irq,
            lsi: false,
            asserted: false,
          };
          const record: SourceRecord = { ...previous, kvmConfig: effective.toString() };
          records.set(s.irq, record);
          changed.set(s.irq, record);
        }
        const writes = durable.sourceWrites(entry.record.vm, [...changed.values()]);
        return failure
          ? { error: failure, writes, undo: undo.run }
          : { answer: { effectiveServers: servers }, writes, undo: undo.run };
      });
    },

    getSourceConfig: (request: pb.GetSourceConfigRequest): pb.GetSourceConfigResponse => {
      const entry = registry.require(request.name);
      const s = entry.backend.getSource(request.irq);
      return {
        source: {
          irq: s.irq,
          levelSensitive: s.lsi,
          asserted: s.asserted,
          pq: s.pq,
          masked: s.masked,
          server: s.server,
          priority: s.priority,
          eisn: s.eisn,
          kvmConfig: encodeKvmSourceConfig(s),
        },
      };
    },

    configureQueue: async (request: pb.ConfigureQueueRequest): Promise<pb.ConfigureQueueResponse> => {
      const entry = registry.require(request.name);
      const q = requiredField(request.queue, "queue");
      return once(entry, request, "ConfigureQueue", () => {
        const restore = queueRestore(entry, request.server, request.priority);
        entry.backend.configureQueue(request.server, request.priority, q);
        const record: QueueRecord = {
          server: request.server,
          priority: request.priority,
          ...q,
          qaddr: q.qaddr.toString(),
        };
        return { answer: {}, writes: [durable.queueWrite(entry.record.vm, record)], undo: restore };
      });
    },

    getQueueConfig: (request: pb.GetQueueConfigRequest): pb.GetQueueConfigResponse => {
      const entry = registry.require(request.name);
      const got = entry.backend.getQueueConfig(request.server, request.priority);
      if (got === undefined) return { hasPage: false, queue: undefined, entriesWritten: 0n };
      return { hasPage: true, queue: got.eq, entriesWritten: BigInt(got.entriesWritten) };
    },

    syncSources: (request: pb.SyncSourcesRequest): pb.SyncSourcesResponse => {
      const entry = registry.require(request.name);
      checkBatch(request.irqs.length, LIMITS.maxConfigBatch, "irqs");
      for (let i = 0; i < request.irqs.length; i++) {
        try {
          entry.backend.syncSource(request.irqs[i]!);
        } catch (error) {
          throw batchFailure(error, i, "irqs");
        }
      }
      return {};
    },

    syncQueues: (request: pb.SyncQueuesRequest): pb.SyncQueuesResponse => {
      const { pages, pageSize } = registry.require(request.name).backend.syncQueues();
      return { dirtyPages: pages, pageSize: BigInt(pageSize) };
    },

    resetController: async (request: pb.ResetControllerRequest): Promise<pb.ResetControllerResponse> => {
      const entry = registry.require(request.name);
      return once(entry, request, "ResetController", () => {
        entry.backend.reset();
        // RESET masks every unmasked source (a masked one keeps its EAS) and tears the queues down.
        return { answer: {}, writes: resetRecords(entry, unmaskedBy) };
      });
    },

    getVpState: (request: pb.GetVpStateRequest): pb.GetVpStateResponse => {
      const [word0, word1] = registry.require(request.name).backend.getVpState(request.server);
      return { word0, word1 };
    },

    setVpState: async (request: pb.SetVpStateRequest): Promise<pb.SetVpStateResponse> => {
      const entry = registry.require(request.name);
      // Runtime state: not durable, nor is its answer.
      return once(entry, request, "SetVpState", () => {
        entry.backend.setVpState(request.server, [request.word0, request.word1]);
        return { answer: {} };
      });
    },

    esbAccess: (request: pb.EsbAccessRequest): pb.EsbAccessResponse => {
      const entry = registry.requireLive(request.name, "EsbAccess");
      const counts = noTriggers();
      const value = entry.backend.esbAccess(
        request.irq,
        isManagementPage(request.page),
        request.offset,
        request.size === 0 ? 8 : request.size,
        isStore(request.kind),
        request.value,
        counts,
      );
      onTriggers(counts);
      return { value };
    },

    timaAccess: (request: pb.TimaAccessRequest): pb.TimaAccessResponse => {
      const entry = registry.requireLive(request.name, "TimaAccess");
      const value = entry.backend.timaAccess(
        request.server,
        request.offset,
        request.size,
        isStore(request.kind),
        request.value,
      );
      return { value };
    },

    triggerSources: (request: pb.TriggerSourcesRequest): pb.TriggerSourcesResponse => {
      const entry = registry.requireLive(request.name, "TriggerSources");
      checkBatch(request.irqs.length, LIMITS.maxTriggerBatch, "irqs");
      const counts = noTriggers();
      entry.backend.trigger(request.irqs, counts);
      onTriggers(counts);
      return counts;
    },

    setLsiLevel: (request: pb.SetLsiLevelRequest): pb.SetLsiLevelResponse => {
      const counts = noTriggers();
      registry
        .requireLive(request.name, "SetLsiLevel")
        .backend.setLsiLevel(request.irq, request.asserted, counts);
      onTriggers(counts);
      return {};
    },

    rawHypercall: async (request: pb.RawHypercallRequest): Promise<pb.RawHypercallResponse> => {
      const entry = registry.requireLive(request.name, "RawHypercall");
      if (request.args.length > LIMITS.maxHcallArgs) {
        throw new VplaneError({
          code: "INVALID_ARGUMENT",
          reason: "TOO_MANY_ARGS",
          message: `at most ${LIMITS.maxHcallArgs} arguments`,
          field: "args",
        });
      }
      const opcode = request.opcode > 0xffffn ? -1 : Number(request.opcode);
      const result = configuresController(opcode)
        ? await configuringHcall(entry, request, opcode)
        : entry.backend.hcall(request.server, opcode, request.args);
      if (request.failOnError && result.returnCode !== HcallReturn.H_SUCCESS) {
        const name = hcallName(result.returnCode);
        throw new VplaneError({
          code:
            result.returnCode === HcallReturn.H_FUNCTION || result.returnCode === HcallReturn.H_HARDWARE
              ? "FAILED_PRECONDITION"
              : "INVALID_ARGUMENT",
          reason: `HCALL_${name}`,
          message: `hypercall 0x${opcode.toString(16)} returned ${name} (${result.returnCode})`,
          hcallReturnCode: result.returnCode,
        });
      }
      return { returnCode: BigInt(result.returnCode), outputs: result.outputs };
    },

    callRtas: (request: pb.CallRtasRequest): pb.CallRtasResponse => {
      const entry = registry.requireLive(request.name, "CallRtas");
      return entry.backend.rtas(rtasCallOf(request.call), request.irq, request.server, request.priority);
    },

    dumpController: (request: pb.DumpControllerRequest): pb.DumpControllerResponse => {
      return { text: registry.require(request.name).backend.dump() };
    },
  };
}
