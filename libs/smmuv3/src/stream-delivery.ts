import type { EventQueue, QueuedEvent } from "./event-queue.js";
import type { PageRequest, PageRequestQueue } from "./page-request-queue.js";

/** One message for the SMMU's consumer (the VMM's event stream): an event or lost marker, or a page request. */
export type Delivery =
  { kind: "event"; queued: QueuedEvent } | { kind: "page-request"; request: PageRequest };

/** A page request raised and not yet delivered, with the events reported before it. */
export interface HeldPageRequest {
  request: PageRequest;
  /** EventQueue.reported when it was raised: it goes out after those events. */
  eventsBefore: number;
}

/**
 * Hands the SMMU's events and page requests to its consumer in the order they happened, one
 * message each, and counts what it handed out (the stream's sequence, which migration carries so
 * that a consumer resumes on the destination where it left off). Events wait in the vEVENTQ
 * (with its depth and lost-events rule); page requests wait here. A page request answered or
 * dropped before it went out is not delivered.
 */
export class StreamDelivery {
  private readonly held: HeldPageRequest[] = [];
  /** Messages handed out so far. */
  delivered = 0;

  constructor(
    private readonly events: EventQueue,
    private readonly requests: PageRequestQueue,
  ) {}

  pageRequestRaised(request: PageRequest): void {
    // Requests answered before anyone took them are dropped here too, so that a consumer that
    // never takes deliveries does not make this list grow beyond the outstanding requests.
    if (this.held.length >= 2 * this.requests.capacity)
      this.held.splice(0, this.held.length, ...this.heldRequests());
    this.held.push({ request, eventsBefore: this.events.reported });
  }

  /** Up to `max` messages, oldest first. */
  take(max = Number.MAX_SAFE_INTEGER): Delivery[] {
    const out: Delivery[] = [];
    while (out.length < max) {
      while (this.held.length > 0 && !this.requests.has(this.held[0]!.request.cookie)) this.held.shift();
      const request = this.held[0];
      const event = this.events.first();
      if (event && (!request || this.events.reportIndexOf(event.sequence) < request.eventsBefore)) {
        out.push({ kind: "event", queued: this.events.read(1)[0]! });
      } else if (request) {
        this.held.shift();
        out.push({ kind: "page-request", request: this.requests.get(request.request.cookie)! });
      } else break;
    }
    this.delivered += out.length;
    return out;
  }

  /** Events only (page requests stay held), counted as delivered. */
  takeEvents(max?: number): QueuedEvent[] {
    const out = this.events.read(max);
    this.delivered += out.length;
    return out;
  }

  /** The held requests still waiting for a response, in the order raised. */
  heldRequests(): HeldPageRequest[] {
    return this.held.filter((h) => this.requests.has(h.request.cookie));
  }

  /** Puts back migrated bookkeeping (issue 6) in place of what this one held. */
  restore(held: readonly HeldPageRequest[], delivered: number): void {
    this.held.splice(0, this.held.length, ...held);
    this.delivered = delivered;
  }
}
