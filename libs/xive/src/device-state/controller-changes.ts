import { noChanges, sameRecord, type KeyedChanges } from "@vplane/model-kit";
import type { XiveDevice } from "../xive-device.js";
import { diffControllerState, type ControllerDelta } from "./controller-delta.js";
import type { ControllerHeader, ControllerState } from "./controller-state.js";
import { XiveChangeTracker } from "./xive-changes.js";
import type { XiveParts } from "./xive-state.js";

/** What a controller shows its pre-copy tracking (InterruptController builds it per read). */
export interface ControllerView {
  header: ControllerHeader;
  /** Bumped whenever a vCPU connects (so the list is not compared). */
  vcpusVersion: number;
  vcpus(): ControllerState["vcpus"];
  /** Bumped whenever the machine's initialised sources change. */
  machineSourcesVersion: number;
  machineSources(): ControllerState["machineSources"];
  stoppedTriggers: number[];
  /** The active XIVE device and its parts; undefined when XICS is active. */
  xive: { device: XiveDevice; parts: XiveParts } | undefined;
  /** The whole state (XICS: its diff is of the whole capture). */
  capture(): ControllerState;
}

/** What the last read handed out. */
interface Sent {
  header: ControllerHeader;
  vcpusVersion: number;
  machineSourcesVersion: number;
  stoppedTriggers: number[];
  xive: { device: XiveDevice; tracker: XiveChangeTracker } | undefined;
  /** XICS: the whole state handed out. */
  state: ControllerState | undefined;
}

/**
 * A controller's pre-copy tracking (issue 14): what changed since the last read. XIVE, whose
 * state grows with the VM (up to 1,048,576 sources), is compared on its arrays
 * (XiveChangeTracker) so that a read costs what changed plus a memcmp; XICS (at most a few
 * thousand sources) is captured and diffed whole (diffControllerState).
 */
export class ControllerChanges {
  private sent: Sent | undefined;

  get tracking(): boolean {
    return this.sent !== undefined;
  }

  end(): void {
    this.sent = undefined;
  }

  /**
   * What changed since the last read taken (everything when `restart` or on the first);
   * undefined when nothing did. With `take`, this read becomes the last.
   */
  read(view: ControllerView, restart: boolean, take: boolean): ControllerDelta | undefined {
    const sent = restart ? undefined : this.sent;
    if (view.xive === undefined) {
      const now = view.capture();
      const delta = diffControllerState(sent?.state, now);
      if (take) this.sent = { ...this.summary(view), xive: undefined, state: now };
      return delta;
    }
    const base = sent?.xive?.device === view.xive.device ? sent : undefined;
    const tracker = base?.xive?.tracker ?? new XiveChangeTracker();
    const xive = tracker.changes(view.xive.parts, take);
    const delta: ControllerDelta = {
      header: view.header,
      vcpus: base?.vcpusVersion === view.vcpusVersion ? undefined : view.vcpus(),
      machineSources:
        base?.machineSourcesVersion === view.machineSourcesVersion ? undefined : view.machineSources(),
      stoppedTriggers: view.stoppedTriggers,
      xive,
      xics: undefined,
    };
    if (take)
      this.sent = { ...this.summary(view), xive: { device: view.xive.device, tracker }, state: undefined };
    const unchanged =
      base !== undefined &&
      sameRecord(base.header, view.header) &&
      delta.vcpus === undefined &&
      delta.machineSources === undefined &&
      base.stoppedTriggers.length === view.stoppedTriggers.length &&
      base.stoppedTriggers.every((irq, i) => irq === view.stoppedTriggers[i]) &&
      (Object.values(xive) as KeyedChanges<unknown>[]).every(noChanges);
    return unchanged ? undefined : delta;
  }

  private summary(view: ControllerView) {
    return {
      header: view.header,
      vcpusVersion: view.vcpusVersion,
      machineSourcesVersion: view.machineSourcesVersion,
      stoppedTriggers: view.stoppedTriggers,
    };
  }
}
