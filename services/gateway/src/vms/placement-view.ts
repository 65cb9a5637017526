import type { HostState, HostStates } from "../hosts/host-states.js";
import { NO_USAGE, type HostUsage } from "../registry/host-registry.js";
import type { Versioned } from "../registry/typed-entry.js";

/** How long a read of the hosts, their leases and usages serves this replica's placements. */
export const VIEW_MS = 1_000;

/** How long a host on whose usage this replica lost a swap is placed on only when no other fits. */
export const LOST_MS = 10_000;

/**
 * This replica's view of the hosts for placing new VMs. On etcd a create's placement read and each
 * lost compare-and-swap on a host's usage are a registry round trip each (a lost one a quorum
 * write too); this view takes most of them off:
 *
 * - the hosts, their leases and usages are read at most every VIEW_MS, not per create (a new host,
 *   a lapsed lease is seen up to VIEW_MS late; health is this replica's own probes, current);
 * - the usage a create swaps against is the newest this replica knows, most often the one its own
 *   last create on that host wrote (value and revision), with no read: the swap's compare still
 *   guards it, so a usage another writer changed meanwhile fails the swap, as a stale read would;
 * - this replica's creates on one host take turns (the next swaps against what the last one wrote,
 *   instead of both against the same revision, one of them losing);
 * - a host whose swap this replica lost (another replica writes it) is avoided for LOST_MS when an
 *   equally good one is left, and its usage is read before each swap meanwhile: concurrent
 *   replicas drift apart onto hosts each writes alone instead of racing on the same ones.
 */
export class PlacementView {
  private read: { states: HostState[]; atMs: number } | undefined;
  /** Per host, the newest usage this replica knows (highest revision: revisions only grow). */
  private readonly usages = new Map<string, Versioned<HostUsage>>();
  /** Per host, when this replica last lost a swap there and the how-manieth loss that was. */
  private readonly lostAt = new Map<string, { ms: number; loss: number }>();
  private losses = 0;
  private readonly turns = new Map<string, Promise<void>>();
  /** The host of this replica's last swap that applied. */
  private lastWon: string | undefined;

  constructor(
    private readonly hostStates: HostStates,
    private readonly now: () => number = Date.now,
  ) {}

  /** The hosts as this replica now sees them; `fresh`: read them now whatever the view's age. */
  async candidates(fresh = false): Promise<HostState[]> {
    if (fresh || !this.read || this.now() - this.read.atMs >= VIEW_MS) {
      const atMs = this.now();
      const states = await this.hostStates.all();
      for (const state of states) this.learn(state.host.name, state.usage);
      this.read = { states, atMs };
    }
    return Promise.all(
      this.read.states.map((s) => this.hostStates.stateOf(s.host, s.lease, this.usageOf(s.host.name))),
    );
  }

  /**
   * Placement's preference among equally good hosts, lowest first: 0, the host this replica keeps
   * to (it writes it alone as far as it knows); 1, any other; 2, one whose swap it lost in the
   * last LOST_MS.
   */
  rank(host: string): number {
    if (host === this.lastWon) return 0;
    const lost = this.lostAt.get(host);
    if (lost !== undefined && this.now() - lost.ms < LOST_MS) return 2;
    return 1;
  }

  /** Swaps this replica lost so far: a placement notes it before choosing (see wrote). */
  epoch(): number {
    return this.losses;
  }

  /**
   * Waits for this replica's creates already placed on `host` to have swapped its usage; the
   * function that lets the next one go.
   */
  async turn(host: string): Promise<() => void> {
    const before = this.turns.get(host) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const queue = before.then(() => mine);
    this.turns.set(host, queue);
    await before;
    return () => {
      if (this.turns.get(host) === queue) this.turns.delete(host);
      release();
    };
  }

  /**
   * The usage to swap against on `host` (call it in the host's turn): the newest this replica
   * knows, the hosts read anew first when it knows none it can trust (it lost a swap there since
   * its last read); undefined when that read no longer lists the host (removed meanwhile).
   */
  async usageToSwap(host: string): Promise<Versioned<HostUsage> | undefined> {
    if (!this.usages.has(host)) await this.candidates(true);
    if (!this.read?.states.some((s) => s.host.name === host)) return undefined;
    return this.usageOf(host);
  }

  /**
   * A swap of `host`'s usage applied: it now holds `usage` (at the swap's revision). The host is
   * the one this replica keeps to unless it lost a swap there after this create was placed
   * (`epoch`): such a create had waited its turn behind the lost one, and the other writer is
   * still there; its usage is then read before the next swap.
   */
  wrote(host: string, usage: Versioned<HostUsage>, epoch: number): void {
    this.learn(host, usage);
    const lost = this.lostAt.get(host);
    if (lost === undefined || epoch >= lost.loss) this.lastWon = host;
    else this.usages.delete(host);
  }

  /**
   * A swap of `host`'s usage lost: another writer changed it (or removed the host). The hosts are
   * read anew for the next placement, and this one passed over for LOST_MS unless this replica
   * wins a swap there again.
   */
  lost(host: string): void {
    this.lostAt.set(host, { ms: this.now(), loss: ++this.losses });
    if (this.read) this.read = { ...this.read, atMs: -Infinity }; // stale: read at the next placement
    if (this.lastWon === host) this.lastWon = undefined;
    this.usages.delete(host);
  }

  /** A swap whose outcome is not known (the registry did not answer): the usage is read anew. */
  forget(host: string): void {
    this.usages.delete(host);
  }

  private learn(host: string, usage: Versioned<HostUsage>): void {
    const known = this.usages.get(host);
    if (!known || usage.revision > known.revision) this.usages.set(host, usage);
  }

  private usageOf(host: string): Versioned<HostUsage> {
    return this.usages.get(host) ?? { value: NO_USAGE, revision: 0 };
  }
}
