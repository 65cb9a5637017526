import { buildCommand, decodeSmmuState, encodeEventRecord, SmmuError, type RawCommand } from "@vplane/smmuv3";
import type { SmmuBackend } from "../smmu-backend.js";
import { CONTRACT_RAM_BYTES, type ContractRig } from "./contract-rig.js";
import { GuestTables, steWords } from "./guest-tables.js";

/**
 * The SMMU contract suite (issue 13 point 5): scenarios run through SmmuBackend on the emulated
 * model and, in the Arm kernel tier, on the native backend over the real kernel's iommufd. Each
 * returns what a VMM can observe (outcomes with code, reason and errno; handled counts; event
 * records; bytes a DMA moved) as plain JSON, compared between the two and recorded as fixtures.
 */
export interface ContractScenario {
  name: string;
  /** The rule, and the kernel source it comes from. */
  rule: string;
  run(rig: ContractRig): Promise<Record<string, unknown>>;
}

export type Outcome =
  | { ok: true; value?: unknown }
  | { ok: false; code: string; reason: string; errno: number | null; batchIndex: number | null };

async function outcome(run: () => unknown): Promise<Outcome> {
  try {
    const value = await run();
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (error) {
    if (!(error instanceof SmmuError)) throw error;
    return {
      ok: false,
      code: error.code,
      reason: error.reason,
      errno: error.errno ?? null,
      batchIndex: error.batchIndex ?? null,
    };
  }
}

// The guest's layout, shared with the Arm tier's service scenarios: RAM at IPA 0, the vSID the
// device gets, its CD and stage-1 tables, and the pages the stage-1 IOVAs map to.
export const VSID = 0x42;
export const CD_IPA = 0x1_0000;
export const TABLES_IPA = 0x2_0000;
export const PAGE_A = 0x10_0000;
export const PAGE_B = 0x10_1000;
export const PAGE_C = 0x10_2000;
export const IOVA_A = 0x200_0000;
export const IOVA_B = 0x200_1000;
/** An IPA below the SMMU's input size that stage 2 does not map (RAM is 16 MiB at IPA 0). */
const UNMAPPED_IPA = 0xf00_0000;
/** An IOVA the guest's stage-1 tables do not map. */
const IOVA_UNMAPPED = 0x300_0000;
const PATTERN = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
const RW = 3;

/** A rig with RAM mapped at stage 2 and the device bound to its vSID. */
function setUp(rig: ContractRig): void {
  rig.backend.mapStage2(0, 0, CONTRACT_RAM_BYTES, RW);
  rig.backend.attachDevice(rig.streamId, VSID, false);
}

/** The stage-1 tables and CD of ASID 1: IOVA_A → PAGE_A, IOVA_B → PAGE_B. */
function stage1(rig: ContractRig): GuestTables {
  const tables = new GuestTables(rig.memory, TABLES_IPA);
  tables.map(IOVA_A, PAGE_A);
  tables.map(IOVA_B, PAGE_B);
  tables.writeCd(CD_IPA, 1);
  return tables;
}

const ste = (config: number, contextPtr = 0): [bigint, bigint] => {
  const { ste0, ste1 } = steWords(config, contextPtr);
  return [ste0, ste1];
};

/**
 * What the guest's vEVENTQ received (faults iommufd keeps for the host, stage 2, are not the
 * guest's): whether anything came, and the first event as its raw record (with the vSID) and
 * queue sequence. Only the first: QEMU's memory core retries a faulting DMA in 4-byte accesses,
 * each faulting again with its own address, where the emulated device makes one access per page.
 */
function events(rig: ContractRig, from = 0n): unknown {
  for (let at = from; at < rig.backend.log.nextSequence; at++) {
    const m = rig.backend.log.read(at);
    if (!m || (m.kind === "event" && !m.queued.forwarded)) continue;
    if (m.kind !== "event") return { first: m.kind };
    return {
      first: {
        sequence: m.queued.sequence,
        id: m.queued.event.id,
        streamId: m.queued.event.streamId,
        record: Buffer.from(encodeEventRecord(m.queued.event)).toString("hex"),
      },
    };
  }
  return { first: null };
}

function bytesAt(rig: ContractRig, address: number): string {
  return Buffer.from(rig.memory.read(address, PATTERN.length)).toString("hex");
}

/** What an exported state says, without the physical StreamID (another device in each environment). */
function stateSummary(bytes: Uint8Array): unknown {
  const s = decodeSmmuState(bytes);
  return {
    mappings: s.mappings,
    devices: s.devices.map((d) => ({
      virtualStreamId: d.virtualStreamId,
      pageRequests: d.pageRequests,
      guestSte: d.guestSte?.map((w) => `0x${w.toString(16)}`) ?? null,
    })),
    eventSequence: s.eventSequence,
    eventsReported: s.eventsReported,
    delivered: s.delivered,
    events: s.events.length,
  };
}

/** The emulated backend's own DMA: the same copy a device makes (read into it, write back out). */
async function emulatedCopy(
  backend: SmmuBackend,
  streamId: number,
  source: number,
  target: number,
): Promise<void> {
  const signal = new AbortController().signal;
  const read = await backend.dma(streamId, undefined, BigInt(source), { read: PATTERN.length }, signal);
  await backend.dma(
    streamId,
    undefined,
    BigInt(target),
    { write: read.data ?? new Uint8Array(PATTERN.length) },
    signal,
  );
}

/** Configures an SMMU the way every direction of the migration scenario starts: RAM, device, nested STE. */
function configure(backend: SmmuBackend, streamId: number): void {
  backend.mapStage2(0, 0, CONTRACT_RAM_BYTES, RW);
  backend.attachDevice(streamId, VSID, false);
  backend.setGuestSte(streamId, ste(5, CD_IPA), 0);
}

export const CONTRACT_SCENARIOS: ContractScenario[] = [
  {
    name: "guest STE validation",
    rule: "IOMMU_HWPT_ALLOC(ARM_SMMUV3): V=0 accepted; a bit outside the nesting mask, Config other than 0/4/5, EATS other than 0/1 → EIO (arm_smmu_validate_vste); unsupported HWPT flags → EOPNOTSUPP",
    async run(rig) {
      setUp(rig);
      const rows: [string, [bigint, bigint], number][] = [
        ["S1 translate (Config 5)", ste(5, CD_IPA), 0],
        ["bypass (Config 4)", ste(4), 0],
        ["abort (Config 0)", ste(0), 0],
        ["V = 0 with other fields set", [ste(5, CD_IPA)[0] & ~1n, 1n << 8n], 0],
        ["Config 1", ste(1), 0],
        ["Config 6 (S2)", ste(6), 0],
        ["Config 7 (nested)", ste(7), 0],
        ["ste[0] bit 52, outside the mask", [ste(5, CD_IPA)[0] | (1n << 52n), 0n], 0],
        ["ste[1] bit 8, outside the mask", [ste(5, CD_IPA)[0], 1n << 8n], 0],
        ["EATS = 2", [ste(5, CD_IPA)[0], 2n << 28n], 0],
        ["EATS = 1 on S1", [ste(5, CD_IPA)[0], 1n << 28n], 0],
        ["HWPT flag NEST_PARENT on a nested HWPT", ste(5, CD_IPA), 1],
      ];
      const results: Record<string, Outcome> = {};
      for (const [name, words, flags] of rows) {
        results[name] = await outcome(() => {
          rig.backend.setGuestSte(rig.streamId, words, flags);
        });
      }
      return results;
    },
  },
  {
    name: "invalidation batches",
    rule: "IOMMU_HWPT_INVALIDATE on the vIOMMU: TLBI_NSNH_ALL/NH_* pass (VMID forced); CFGI_CD/CFGI_CD_ALL/ATC_INV need a vdevice's vSID; anything else → EIO; entry_num comes back as the count handled before the refused entry (arm_vsmmu_convert_user_cmd, iommufd_hwpt_invalidate)",
    run(rig) {
      setUp(rig);
      stage1(rig);
      rig.backend.setGuestSte(rig.streamId, ste(5, CD_IPA), 0);
      const batches: [string, RawCommand[]][] = [
        [
          "TLBI_NH_ASID, CFGI_CD, then CMD_SYNC",
          [buildCommand.nhAsid(1), buildCommand.cfgiCd(VSID, 0), buildCommand.sync()],
        ],
        [
          "TLBI_NH_VA, then CFGI_CD of an unknown vSID",
          [buildCommand.nhVa(1, IOVA_A), buildCommand.cfgiCd(0x99, 0)],
        ],
        [
          "TLBI_NSNH_ALL, NH_ALL, NH_VAA, CFGI_CD_ALL",
          [
            buildCommand.nsnhAll(),
            buildCommand.nhAll(),
            buildCommand.nhVaa(IOVA_A),
            buildCommand.cfgiCdAll(VSID),
          ],
        ],
        ["PREFETCH_CONFIG", [buildCommand.raw(0x01)]],
        ["CFGI_STE", [buildCommand.raw(0x03)]],
        ["TLBI_S2_IPA", [buildCommand.raw(0x2a)]],
        ["ATC_INV of the vSID", [buildCommand.atcInv(VSID)]],
      ];
      const results: Record<string, unknown> = {};
      for (const [name, commands] of batches) {
        const r = rig.backend.invalidate(commands.map((raw) => ({ raw })));
        results[name] = {
          handled: r.handled,
          error: r.error
            ? {
                code: r.error.code,
                reason: r.error.reason,
                errno: r.error.errno ?? null,
                batchIndex: r.error.batchIndex ?? null,
              }
            : null,
        };
      }
      return Promise.resolve(results);
    },
  },
  {
    name: "event records carry the vSID",
    rule: "a stage-1 fault of a nested STE's device reaches the vEVENTQ as the raw record with the StreamID replaced by the vdevice's virt_id; a stage-2 fault (here: the CD at an IPA stage 2 does not map) stays the host's (arm_smmu_handle_event: vmaster && !event->s2)",
    async run(rig) {
      setUp(rig);
      stage1(rig);
      rig.backend.setGuestSte(rig.streamId, ste(5, CD_IPA), 0);
      await rig.copy(BigInt(IOVA_UNMAPPED), BigInt(IOVA_B), PATTERN.length);
      await rig.settle(1);
      const stage1Fault = events(rig);
      const seen = rig.backend.log.nextSequence;
      rig.backend.setGuestSte(rig.streamId, ste(5, UNMAPPED_IPA), 0);
      await rig.copy(BigInt(IOVA_A), BigInt(IOVA_B), PATTERN.length);
      await rig.settle(1);
      return { stage1Fault, afterStage2Fault: events(rig, seen) };
    },
  },
  {
    name: "stage-2 fault after unmap",
    rule: "a bypass guest STE (stage 2 only): DMA works while RAM is mapped; after IOAS_UNMAP the same DMA faults at stage 2, lands nothing, and the fault is the host's, not the guest's vEVENTQ's",
    async run(rig) {
      setUp(rig);
      rig.backend.setGuestSte(rig.streamId, ste(4), 0);
      rig.memory.write(PAGE_A, PATTERN);
      await rig.copy(BigInt(PAGE_A), BigInt(PAGE_B), PATTERN.length);
      const copied = bytesAt(rig, PAGE_B);
      const unmapped = rig.backend.unmapStage2(0, CONTRACT_RAM_BYTES);
      await rig.copy(BigInt(PAGE_A), BigInt(PAGE_C), PATTERN.length);
      await rig.settle(1);
      return { copied, unmapped, afterUnmap: bytesAt(rig, PAGE_C), events: events(rig) };
    },
  },
  {
    name: "DMA through both stages",
    rule: "a nested STE: the device's IOVA goes through the guest's stage-1 tables (their addresses IPAs, themselves through stage 2) then stage 2; after the guest changes a leaf, TLBI_NH_VA makes the next DMA use it",
    async run(rig) {
      setUp(rig);
      const tables = stage1(rig);
      rig.backend.setGuestSte(rig.streamId, ste(5, CD_IPA), 0);
      rig.memory.write(PAGE_A, PATTERN);
      await rig.copy(BigInt(IOVA_A), BigInt(IOVA_B), PATTERN.length);
      const throughStage1 = bytesAt(rig, PAGE_B);
      tables.map(IOVA_B, PAGE_C);
      const invalidated = rig.backend.invalidate([
        { raw: buildCommand.nhVa(1, IOVA_B, { leaf: true }) },
      ]).handled;
      await rig.copy(BigInt(IOVA_A), BigInt(IOVA_B), PATTERN.length);
      return { throughStage1, invalidated, afterRemap: bytesAt(rig, PAGE_C), events: events(rig) };
    },
  },
  {
    name: "export → import, both directions",
    rule: "an SMMU quiesced and exported (the shared state format) imports on the other backend and translates there as before: this rig's backend → an emulated one, and an emulated one → this rig's backend (in the Arm tier: native → emulated and emulated → native)",
    async run(rig) {
      stage1(rig);
      rig.memory.write(PAGE_A, PATTERN);
      configure(rig.backend, rig.streamId);
      rig.backend.quiesce();
      const fromRig = rig.backend.exportState().payload;
      const emulated = rig.emulatedPeer(fromRig);
      emulated.resume();
      await emulatedCopy(emulated, rig.streamId, IOVA_A, IOVA_B);
      const toEmulated = { state: stateSummary(fromRig), copied: bytesAt(rig, PAGE_B) };
      rig.memory.write(PAGE_B, new Uint8Array(PATTERN.length));

      const source = rig.emulatedPeer();
      configure(source, rig.streamId);
      source.quiesce();
      const fromEmulated = source.exportState().payload;
      rig.reopen(fromEmulated);
      const quiesced = rig.backend.quiesced;
      rig.backend.resume();
      await rig.copy(BigInt(IOVA_A), BigInt(IOVA_B), PATTERN.length);
      const devices = rig.backend
        .devices()
        .map((d) => ({ virtualStreamId: d.virtualStreamId, stage1: d.guestSte?.stage1.kind }));
      return {
        toEmulated,
        fromEmulated: { state: stateSummary(fromEmulated), quiesced, devices, copied: bytesAt(rig, PAGE_B) },
      };
    },
  },
];
