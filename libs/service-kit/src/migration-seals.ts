import { VplaneError } from "./vplane-error.js";

/** How long a service remembers where a VM that migrated away went, to answer late callers. */
export const DEPARTED_RETENTION_MS = 10 * 60 * 1000;

/**
 * The VMs whose device state a live migration exported from this service (issue 17 point 1).
 * From the export on, whatever a call delivers into such a VM's devices (a trigger, an LSI
 * level, a DMA, a page response) would change a state already sent and be lost with the
 * source's copy; so those calls are refused UNAVAILABLE VM_MIGRATING, naming the destination
 * (ErrorInfo metadata "destination"): until the migration fails and the devices resume here,
 * and once they are released, for DEPARTED_RETENTION_MS (in memory: after a restart such a VM
 * is NOT_FOUND). A VM created or imported here again is no longer sealed.
 */
export class MigrationSeals {
  /** VM id → the destination its state was exported to. */
  private readonly sealed = new Map<string, string>();
  private readonly departed = new Map<string, { destination: string; untilMs: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The VM's state was exported: for a migration to `destination`, or (empty) for a snapshot. */
  exported(vm: string, destination: string): void {
    if (destination !== "") this.sealed.set(vm, destination);
  }

  /** The VM's devices run here again (the migration failed, or a snapshot resumed them). */
  resumed(vm: string): void {
    this.sealed.delete(vm);
  }

  /** The VM's devices were destroyed here: if its state had left, remember where to. */
  released(vm: string): void {
    const destination = this.sealed.get(vm);
    this.sealed.delete(vm);
    for (const [id, gone] of this.departed) if (gone.untilMs <= this.now()) this.departed.delete(id);
    if (destination !== undefined)
      this.departed.set(vm, { destination, untilMs: this.now() + DEPARTED_RETENTION_MS });
  }

  /** The VM has devices here again (created or imported). */
  arrived(vm: string): void {
    this.sealed.delete(vm);
    this.departed.delete(vm);
  }

  /** UNAVAILABLE VM_MIGRATING if `what` would deliver into a state that left (or is leaving). */
  check(vm: string, what: string): void {
    const gone = this.departed.get(vm);
    const destination =
      this.sealed.get(vm) ?? (gone && gone.untilMs > this.now() ? gone.destination : undefined);
    if (destination === undefined) return;
    throw new VplaneError({
      code: "UNAVAILABLE",
      reason: "VM_MIGRATING",
      message: `${what} refused: VM ${vm} is migrating to ${destination} (its device state has left this host); resend it to the VM's devices there once the migration completes, or here if it fails`,
      metadata: { destination },
    });
  }
}
