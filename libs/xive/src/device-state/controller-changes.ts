import { noChanges, sameRecord, type KeyedChanges } from "@vplane/model-kit";
import type { XicsDevice } from "../xics/xics-device.js";
import type { XiveDevice } from "../xive-device.js";
import type { ControllerDelta } from "./controller-delta.js";
import type { ControllerHeader, ControllerState } from "./controller-state.js";
import { XicsChangeTracker } from "./xics-changes.js";
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
  /** The active device: XIVE with its parts, or XICS. */
  active: { mode: "XIVE"; device: XiveDevice; parts: XiveParts } | { mode: "XICS"; device: XicsDevice };
}

/** The active device's tracker. */
type Tracked =
  | { mode: "XIVE"; device: XiveDevice; tracker: XiveChangeTracker }
  | { mode: "XICS"; device: XicsDevice; tracker: XicsChangeTracker };

/** What the last read handed out. */
interface Sent {
  header: ControllerHeader;
  vcpusVersion: number;
  machineSourcesVersion: number;
  stoppedTriggers: number[];
  tracked: Tracked;
}

/**
 * A controller's pre-copy tracking (issue 14): what changed since the last read, found without
 * capturing the state. XIVE (up to 1,048,576 sources) is compared on its arrays behind write
 * marks (XiveChangeTracker); XICS (a few thousand sources) on its ICS arrays in ranges and its
 * ICPs' registers (XicsChangeTracker). A switch of the active device (DUAL mode) moves the new
 * one whole.
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
    const { active } = view;
    const base = sent?.tracked.device === active.device ? sent : undefined;
    let tracked: Tracked;
    let xive: ControllerDelta["xive"];
    let xics: ControllerDelta["xics"];
    if (active.mode === "XIVE") {
      const tracker = base?.tracked.mode === "XIVE" ? base.tracked.tracker : new XiveChangeTracker();
      xive = tracker.changes(active.parts, take);
      tracked = { mode: "XIVE", device: active.device, tracker };
    } else {
      const tracker = base?.tracked.mode === "XICS" ? base.tracked.tracker : new XicsChangeTracker();
      xics = tracker.changes(active.device.ics, active.device.icpsByServer, take);
      tracked = { mode: "XICS", device: active.device, tracker };
    }
    const delta: ControllerDelta = {
      header: view.header,
      vcpus: base?.vcpusVersion === view.vcpusVersion ? undefined : view.vcpus(),
      machineSources:
        base?.machineSourcesVersion === view.machineSourcesVersion ? undefined : view.machineSources(),
      stoppedTriggers: view.stoppedTriggers,
      xive,
      xics,
    };
    if (take) this.sent = { ...this.summary(view), tracked };
    const unchanged =
      base !== undefined &&
      sameRecord(base.header, view.header) &&
      delta.vcpus === undefined &&
      delta.machineSources === undefined &&
      base.stoppedTriggers.length === view.stoppedTriggers.length &&
      base.stoppedTriggers.every((irq, i) => irq === view.stoppedTriggers[i]) &&
      (Object.values(xive ?? xics ?? {}) as KeyedChanges<unknown>[]).every(noChanges);
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
