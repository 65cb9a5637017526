import { addKeyedChange, noChanges, sameRecord, type KeyedChanges } from "@vplane/model-kit";
import type { Stage2Mapping } from "../stage2-domain.js";
import type { SmmuDelta } from "./smmu-delta.js";
import type { DeviceState, SmmuState } from "./smmu-state.js";

/** What an SMMU shows its pre-copy tracking (Smmu builds it per read). */
export interface TrackedSmmu {
  /** The state but for the mappings and devices (captureSmmuRuntime). */
  runtime(): SmmuState;
  mappingAt(ipa: number): Stage2Mapping | undefined;
  /** Every mapping, ascending by IPA. */
  mappings(): readonly Stage2Mapping[];
  deviceAt(streamId: number): DeviceState | undefined;
  /** Every device, ascending by StreamID. */
  devices(): DeviceState[];
}

/**
 * Distinct keys marked at most before a list is compared whole instead (a guest that churns
 * through more mappings or devices than this between two reads costs one full compare, and the
 * marks never outgrow it).
 */
const MARKS_KEPT = 4096;

/** The keys of a list written since the last read took them; `all` once more than MARKS_KEPT. */
class WrittenKeys {
  private readonly keys = new Set<number>();
  all = false;

  mark(key: number): void {
    if (this.all || this.keys.has(key)) return;
    if (this.keys.size < MARKS_KEPT) this.keys.add(key);
    else {
      this.all = true;
      this.keys.clear();
    }
  }

  clear(): void {
    this.keys.clear();
    this.all = false;
  }

  ascending(): number[] {
    return [...this.keys].sort((a, b) => a - b);
  }
}

/** What the last read handed out: the runtime part, and the two lists by key. */
interface Sent {
  runtime: SmmuState;
  mappings: Map<number, Stage2Mapping>;
  devices: Map<number, DeviceState>;
}

/**
 * An SMMU's pre-copy tracking (issue 14: the stop costs what changed): the stage-2 mappings (by
 * IPA) and devices (by StreamID) are the part that grows with the VM (1,024 StreamIDs at the
 * benchmark's largest point), so the SMMU marks the key of every mapping and device it changes
 * (mappingWritten, deviceWritten, while tracking) and a read compares only those with the copy
 * it keeps of what it last handed out. The rest (features, counters, seed PASID table, MSI
 * binding, held events and page requests: small, or bounded by a queue's depth) is captured and
 * compared whole on each read. Merged in order, the deltas give the export byte for byte.
 */
export class SmmuChangeTracker {
  private sent: Sent | undefined;
  private readonly writtenMappings = new WrittenKeys();
  private readonly writtenDevices = new WrittenKeys();

  get tracking(): boolean {
    return this.sent !== undefined;
  }

  end(): void {
    this.sent = undefined;
    this.writtenMappings.clear();
    this.writtenDevices.clear();
  }

  /** The mapping at `ipa` was made or removed. */
  mappingWritten(ipa: number): void {
    if (this.sent) this.writtenMappings.mark(ipa);
  }

  /** The device of `streamId` was bound, unbound, or its binding changed. */
  deviceWritten(streamId: number): void {
    if (this.sent) this.writtenDevices.mark(streamId);
  }

  /**
   * What changed since the last read taken (everything when `restart` or on the first);
   * undefined when nothing did. With `take`, this read becomes the last.
   */
  changes(smmu: TrackedSmmu, restart: boolean, take: boolean): SmmuDelta | undefined {
    const sent = restart ? undefined : this.sent;
    const runtime = smmu.runtime();
    if (sent === undefined) {
      const mappings = smmu.mappings().map((m) => ({ ...m }));
      const devices = smmu.devices();
      if (take) {
        this.end();
        this.sent = {
          runtime,
          mappings: new Map(mappings.map((m) => [m.ipa, m])),
          devices: new Map(devices.map((d) => [d.streamId, d])),
        };
      }
      return {
        state: { ...runtime, mappings, devices },
        mappings: { changed: mappings, removed: [] },
        devices: { changed: devices, removed: [] },
      };
    }
    const mappings = keyedChanges(
      sent.mappings,
      this.writtenMappings,
      (ipa) => {
        const m = smmu.mappingAt(ipa);
        return m && { ...m };
      },
      () => smmu.mappings().map((m) => m.ipa),
      take,
    );
    const devices = keyedChanges(
      sent.devices,
      this.writtenDevices,
      (sid) => smmu.deviceAt(sid),
      () => smmu.devices().map((d) => d.streamId),
      take,
    );
    const unchanged = noChanges(mappings) && noChanges(devices) && sameRecord(sent.runtime, runtime);
    if (take) {
      sent.runtime = runtime;
      this.writtenMappings.clear();
      this.writtenDevices.clear();
    }
    if (unchanged) return undefined;
    return { state: { ...runtime, mappings: mappings.changed, devices: devices.changed }, mappings, devices };
  }
}

/**
 * The changes of one keyed list: each written key (every key, when too many were) compared with
 * its copy, ascending; with `take`, the copy follows.
 */
function keyedChanges<T extends object>(
  sent: Map<number, T>,
  written: WrittenKeys,
  recordAt: (key: number) => T | undefined,
  allKeys: () => number[],
  take: boolean,
): KeyedChanges<T> {
  const changes: KeyedChanges<T> = { changed: [], removed: [] };
  const keys = written.all
    ? [...new Set([...sent.keys(), ...allKeys()])].sort((a, b) => a - b)
    : written.ascending();
  for (const key of keys) {
    const now = recordAt(key);
    if (!addKeyedChange(changes, key, sent.get(key), now) || !take) continue;
    if (now === undefined) sent.delete(key);
    else sent.set(key, now);
  }
  return changes;
}
