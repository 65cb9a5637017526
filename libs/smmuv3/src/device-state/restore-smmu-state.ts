import type { EventQueue } from "../event-queue.js";
import { forwardedToGuest } from "../fault-event.js";
import type { PageRequest, PageRequestQueue } from "../page-request-queue.js";
import { unrecoverableFaultFromEvent } from "../seed-fault-report.js";
import { SmmuError } from "../smmu-error.js";
import type { Stage2Domain } from "../stage2-domain.js";
import type { StreamDelivery } from "../stream-delivery.js";
import type { GuestStage1 } from "../stream-table-entry.js";
import type { SmmuState } from "./smmu-state.js";

/** The runtime blocks of an SMMU: its event queue, page requests and what its stream delivered. */
export interface SmmuRuntimeTarget {
  events: EventQueue;
  pageRequests: PageRequestQueue;
  delivery: StreamDelivery;
}

/** What restoring a saved state acts on: a fresh SMMU's blocks and its own device binding (Smmu.importState hands them in). */
export interface SmmuRestoreTarget extends SmmuRuntimeTarget {
  domain: Stage2Domain;
  /** Binds a device with AttachDevice's checks, then installs its guest STE words with HWPT_ALLOC's. */
  attachDevice(
    streamId: number,
    virtualStreamId: number,
    pageRequests: boolean,
    guestSte: readonly [bigint, bigint] | undefined,
  ): void;
  setPasidTable(table: GuestStage1 | undefined): void;
}

/**
 * Replays a decoded state onto a fresh SMMU (the VMID and host limits are the importer's; the
 * guest-visible ones came with the state): stage-2 mappings, devices and their guest STEs, the
 * seed PASID table, the MSI binding, then the event queue, the page requests (each as if raised
 * `timeout - remaining` before `now`, so resume() gives it back exactly the time it had left)
 * and what the stream had delivered. A replay step the model refuses (overlapping or unbacked
 * mapping, bad guest STE, vSID taken, doorbell) is INVALID_ARGUMENT STATE_INCONSISTENT naming
 * the entry.
 */
export function restoreSmmuState(target: SmmuRestoreTarget, s: SmmuState, now: number): void {
  s.mappings.forEach((m, i) =>
    replaying(`mappings[${i}]`, () => target.domain.map(m.ipa, m.hostAddress, m.size, m.perm)),
  );
  s.devices.forEach((d, i) =>
    replaying(`devices[${i}]`, () =>
      target.attachDevice(d.streamId, d.virtualStreamId, d.pageRequests, d.guestSte),
    ),
  );
  target.setPasidTable(s.pasidTable);
  const msi = s.msi;
  if (msi) replaying("msi", () => target.domain.bindMsi(msi.giova, msi.gpa, msi.size));
  restoreSmmuRuntime(target, s, now);
}

/**
 * Sets an SMMU's runtime state to the saved one's, whatever it held: the event queue and its
 * counters, the page requests (each as if raised `timeout - remaining` before `now`, so resume()
 * gives it back exactly the time it had left) and what the stream had delivered.
 */
export function restoreSmmuRuntime(target: SmmuRuntimeTarget, s: SmmuState, now: number): void {
  target.events.restore(
    s.events.map((e) =>
      e.lost
        ? e
        : {
            ...e,
            seedFault: unrecoverableFaultFromEvent(e.event),
            forwarded: forwardedToGuest(e.event),
          },
    ),
    {
      nextSequence: s.eventSequence,
      reported: s.eventsReported,
      dropped: s.eventsDropped,
    },
  );
  const requests = s.pageRequests.map(
    ({ remainingMs, held: _held, eventsBefore: _before, ...r }): PageRequest => ({
      ...r,
      raisedAt: now + remainingMs - s.pageRequestTimeoutMs,
      deadline: now + remainingMs,
    }),
  );
  target.pageRequests.restore(requests, s.nextCookie);
  target.delivery.restore(
    s.pageRequests.flatMap((r, i) =>
      r.held ? [{ request: requests[i]!, eventsBefore: r.eventsBefore }] : [],
    ),
    s.delivered,
  );
}

/**
 * Runs one replay step of an import; a refusal becomes STATE_INCONSISTENT naming the entry
 * (`entry.field` when the model named a field), with the model's reason in the message. A
 * refusal that already names a STATE_* reason (a check of the state itself) goes through as it is.
 */
export function replaying<T>(entry: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (!(error instanceof SmmuError) || error.reason.startsWith("STATE_")) throw error;
    const field = error.field ? `${entry}.${error.field}` : entry;
    throw new SmmuError({
      code: "INVALID_ARGUMENT",
      reason: "STATE_INCONSISTENT",
      message: `${field}: ${error.reason}: ${error.message}`,
      field,
      errno: error.errno,
    });
  }
}
