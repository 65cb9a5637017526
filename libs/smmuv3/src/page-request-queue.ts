import { Errno, SmmuError, invalidArgument } from "./smmu-error.js";

/** Page response codes (the seed's and iommu core's: SUCCESS 0, INVALID 1, FAILURE 2; digest §1.4). */
export const PageResponseCode = { SUCCESS: 0, INVALID: 1, FAILURE: 2 } as const;
export type PageResponseCode = (typeof PageResponseCode)[keyof typeof PageResponseCode];

/** iommu_hwpt_pgfault flags (digest §2.6). */
export const PageRequestFlags = { PASID_VALID: 1 << 0, LAST_PAGE: 1 << 1 } as const;

/** A recoverable fault waiting for the VMM's answer (iommufd's iommu_hwpt_pgfault, digest §2.6). */
export interface PageRequest {
  /** Identifies the request in the response (iommufd cookie). */
  cookie: number;
  /** Physical StreamID of the requesting device. */
  streamId: number;
  /** The guest's StreamID for it (the vdevice virt_id). */
  virtualStreamId: number;
  /** SubstreamID (PASID) when the transaction had one. */
  substreamId: number | undefined;
  /** PRI page request group index (9 bits), unique among the device's outstanding requests. */
  groupId: number;
  flags: number;
  /** Permissions wanted: READ 1, WRITE 2 (digest §2.6). */
  perm: number;
  /** Faulting address, aligned down to 4 KiB. */
  address: bigint;
  /** The caller's clock when the request was raised, and when it expires. */
  raisedAt: number;
  deadline: number;
}

/** How a request ended. */
export interface PageRequestOutcome {
  request: PageRequest;
  code: PageResponseCode;
  /** True when the request expired rather than being answered. */
  timedOut: boolean;
}

const MAX_GROUP_ID = 511;

/**
 * Outstanding page requests (PRI / stall) of one SMMU. A request waits for a response or for
 * its deadline; the model keeps no timers: callers pass their clock to raise() and expire().
 * Bounded: when `capacity` requests are outstanding (or a device has all 512 group ids in use),
 * a new one cannot be queued and the fault is answered FAILURE at once.
 */
export class PageRequestQueue {
  private readonly pending = new Map<number, PageRequest>();
  private nextCookie = 1;

  constructor(
    readonly capacity: number,
    readonly timeoutMs: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** The cookie the next request is given (unless taken: cookies skip 0 and those in use). */
  get cookieCounter(): number {
    return this.nextCookie;
  }

  /**
   * Puts back migrated requests (issue 6), in the order they were raised, in place of what this
   * queue held; the caller has checked them (decodeSmmuState).
   */
  restore(requests: readonly PageRequest[], nextCookie: number): void {
    this.pending.clear();
    for (const r of requests) this.pending.set(r.cookie, r);
    this.nextCookie = nextCookie >>> 0;
  }

  /** Moves every request's raise time and deadline later by shift(request) ms (time spent stopped). */
  postpone(shift: (request: PageRequest) => number): void {
    for (const [cookie, r] of this.pending) {
      const by = Math.max(0, shift(r));
      this.pending.set(cookie, { ...r, raisedAt: r.raisedAt + by, deadline: r.deadline + by });
    }
  }

  /** The request with that cookie, if it is waiting. */
  get(cookie: number): PageRequest | undefined {
    return this.pending.get(cookie);
  }

  /** Whether the request is still waiting for its response. */
  has(cookie: number): boolean {
    return this.pending.has(cookie);
  }

  list(): PageRequest[] {
    return [...this.pending.values()];
  }

  /** Queues a request, or returns undefined when it cannot be queued. */
  raise(r: Omit<PageRequest, "cookie" | "groupId" | "deadline" | "flags">): PageRequest | undefined {
    if (this.pending.size >= this.capacity) return undefined;
    const used = new Set<number>();
    for (const p of this.pending.values()) if (p.streamId === r.streamId) used.add(p.groupId);
    let groupId = 0;
    while (groupId <= MAX_GROUP_ID && used.has(groupId)) groupId++;
    if (groupId > MAX_GROUP_ID) return undefined;
    while (this.pending.has(this.nextCookie) || this.nextCookie === 0)
      this.nextCookie = (this.nextCookie + 1) >>> 0;
    const request: PageRequest = {
      ...r,
      cookie: this.nextCookie,
      groupId,
      flags: PageRequestFlags.LAST_PAGE | (r.substreamId !== undefined ? PageRequestFlags.PASID_VALID : 0),
      deadline: r.raisedAt + this.timeoutMs,
    };
    this.nextCookie = (this.nextCookie + 1) >>> 0;
    this.pending.set(request.cookie, request);
    return request;
  }

  /**
   * Answers a request. Like iommufd's fault write (digest §2.6): a code outside SUCCESS / INVALID
   * / FAILURE → EINVAL, an unknown cookie (never raised, already answered, expired) → EINVAL.
   * iommufd itself takes only SUCCESS and INVALID; FAILURE is the seed's third code.
   */
  respond(cookie: number, code: number): PageRequestOutcome {
    if (
      code !== PageResponseCode.SUCCESS &&
      code !== PageResponseCode.INVALID &&
      code !== PageResponseCode.FAILURE
    ) {
      throw invalidArgument("BAD_RESPONSE_CODE", `response code must be 0, 1 or 2, got ${code}`, "code");
    }
    const request = this.pending.get(cookie);
    if (!request) {
      throw new SmmuError({
        code: "NOT_FOUND",
        reason: "PAGE_REQUEST_NOT_FOUND",
        message: `no outstanding page request with cookie ${cookie}`,
        errno: Errno.EINVAL,
        field: "cookie",
      });
    }
    this.pending.delete(cookie);
    return { request, code: code, timedOut: false };
  }

  /** Removes and returns the requests whose deadline is at or before `now` (answered FAILURE). */
  expire(now: number): PageRequestOutcome[] {
    const out: PageRequestOutcome[] = [];
    for (const [cookie, request] of this.pending) {
      if (request.deadline <= now) {
        this.pending.delete(cookie);
        out.push({ request, code: PageResponseCode.FAILURE, timedOut: true });
      }
    }
    return out;
  }

  /** Answers INVALID every request of a device going away (iommufd_auto_response_faults). */
  dropDevice(streamId: number): PageRequestOutcome[] {
    const out: PageRequestOutcome[] = [];
    for (const [cookie, request] of this.pending) {
      if (request.streamId === streamId) {
        this.pending.delete(cookie);
        out.push({ request, code: PageResponseCode.INVALID, timedOut: false });
      }
    }
    return out;
  }
}
