import { setTimeout as sleep } from "node:timers/promises";
import type { Controller } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { Phase, type OperationProgress } from "@vplane/proto/gen/vplane/migration/v1/operation_progress";
import { VplaneError, toVplaneError, unaryCall } from "@vplane/service-kit";
import type { Principal } from "../access/access-tokens.js";
import {
  MIGRATE_STEP,
  describeProgress,
  errorOf,
  migrateSteps,
  percentOf,
  phaseName,
  phasesBefore,
  statusAfter,
} from "./migration-progress.js";
import { TERMINAL_PHASES, followMigration, type FollowOutcome } from "./migration-watch.js";
import {
  StepFailure,
  isAbandonment,
  newOperationRecord,
  type OperationContext,
} from "../operations/operation-runner.js";
import { fits } from "./placement.js";
import { operationId, type OperationRecord } from "../operations/operation-records.js";
import { unansweredPause } from "../registry/unanswered-pause.js";
import type { HostRecord } from "../schemas/host-schema.js";
import type { MigrateRequest, MigrationStatus } from "../schemas/migration-schema.js";
import type { Vm } from "../schemas/vm-schema.js";
import { refuseWhileBusy } from "./busy-guard.js";
import { writeAndStart } from "./unanswered-start.js";
import { controllerName } from "./device-names.js";
import { outcomeUnknown } from "./outcome-unknown.js";
import type { ExtraOps, VmOperationDeps } from "./vm-operation-deps.js";

/** After a cancel or a timeout, how long the migration service may take to reach its final state, ms (the cancel route documents it). */
const SETTLE_AFTER_ABORT_MS = 60_000;
/** How often a running migration looks in the registry for a cancel made on another replica, ms. */
const CANCEL_POLL_MS = 1000;
/** Mirrored progress is written at most this often, ms (phase changes and the end always are). */
const MIRROR_INTERVAL_MS = 250;

const badDestination = (reason: string, message: string) =>
  new VplaneError({ code: "INVALID_ARGUMENT", reason, message, field: "destinationHost" });

/**
 * Live migration of a VM between two registered hosts. The gateway does not move anything itself:
 * it asks the source host's migration service (StartMigration) to move the VM's devices and RAM
 * to the destination host's migration service, mirrors that operation's progress into its own,
 * turns a cancel of its own into CancelOperation there, and records the outcome: the VM on the
 * destination (host, RAM path, both hosts' usage, under CAS) after COMPLETED, on the source with
 * the error otherwise.
 */
export class VmMigrations {
  constructor(private readonly deps: VmOperationDeps) {}

  /** Checks the request, marks the VM busy and starts the migrate operation; `extra` joins that write. */
  async start(
    principal: Principal,
    name: string,
    request: MigrateRequest,
    extra: ExtraOps = () => [],
  ): Promise<OperationRecord> {
    const { vms, hosts, operations } = this.deps;
    const vm = await vms.require(principal.tenant, name);
    refuseWhileBusy(vm.value);
    if (vm.value.state !== "READY") {
      throw new VplaneError({
        code: "FAILED_PRECONDITION",
        reason: "VM_NOT_READY",
        message: `VM '${name}' is ${vm.value.state}; only a READY VM migrates`,
      });
    }
    const destination = await hosts.get(request.destinationHost);
    if (!destination) {
      throw badDestination(
        "DESTINATION_HOST_NOT_FOUND",
        `destinationHost '${request.destinationHost}' is not a registered host`,
      );
    }
    if (destination.name === vm.value.host) {
      throw badDestination(
        "DESTINATION_IS_SOURCE",
        `VM '${name}' already runs on host '${destination.name}'; name another host`,
      );
    }
    const source = await hosts.require(vm.value.host);
    const { usage, availability } = await this.deps.hostStates.of(destination);
    if (availability.state === "UNAVAILABLE") {
      throw new VplaneError({
        code: "UNAVAILABLE",
        reason: "HOST_UNAVAILABLE",
        message: `destinationHost '${destination.name}' takes no VMs now: ${availability.message ?? ""}`,
        field: "destinationHost",
      });
    }
    if (!fits({ host: destination, usage: usage.value }, vm.value)) {
      throw new VplaneError({
        code: "RESOURCE_EXHAUSTED",
        reason: "HOST_CAPACITY_EXCEEDED",
        message: `host '${destination.name}' has not enough free vCPUs, guest RAM, VM or SMMU room for VM '${name}'`,
        field: "destinationHost",
      });
    }
    const operation = newOperationRecord({
      kind: "migrate",
      tenant: principal.tenant,
      vm: name,
      host: source.name,
      owner: this.deps.instanceId,
      steps: migrateSteps(request),
    });
    const status: MigrationStatus = {
      sourceHost: source.name,
      destinationHost: destination.name,
      operation: "",
      phase: "SETTING_UP",
      ramBytesTotal: request.vmmMovesRam ? 0 : vm.value.memoryBytes,
      ramBytesTransferred: 0,
      deviceStateBytes: 0,
      devicePrecopyBytes: 0,
      devicePrecopyIterations: 0,
      deviceDirtyBytes: 0,
      elapsedMs: 0,
      downtimeMs: 0,
      dirtyPages: 0,
      downtimeLimitMs: request.downtimeLimitMs ?? 0,
      vmmMovesRam: request.vmmMovesRam ?? false,
      cancelRequested: false,
    };
    operation.metadata.migration = status;
    const migrating: Vm = {
      ...vm.value,
      activeOperation: operation.name,
      updateTime: new Date().toISOString(),
    };
    await writeAndStart(
      this.deps,
      migrating,
      operation,
      (context) =>
        new MigrationRun(this.deps, context, migrating, source, destination, request, status).run(),
      () => vms.replace(vm, migrating, [...operations.create(operation), ...extra(operation)]),
    );
    return operation;
  }

  /**
   * Takes over the migrate operation of a replica that stopped (OperationRecovery): the migration
   * goes on without it, so this replica becomes the owner, follows the migration to its end and
   * records the outcome as the first would have. When the stopped replica had recorded the
   * migration service's operation, that one is followed. When it had not (it stopped before
   * StartMigration answered, or before recording the answer), whether a migration runs on the
   * source is not known: StartMigration is asked again with the operation's own request id, which
   * the source answers with the migration that request started, or, never asked, starts it now
   * (the operation is the gateway's intent to migrate). False when it cannot be taken over (the
   * VM or a host is gone, or another replica took it first); the caller then ends it as abandoned.
   */
  async adopt(op: OperationRecord): Promise<boolean> {
    const { vms, hosts, runner, instanceId } = this.deps;
    const recorded = op.metadata.migration;
    if (!recorded) return false;
    const { tenant } = op.metadata;
    const [vm, source, destination] = await Promise.all([
      vms.get(tenant, op.metadata.vm),
      hosts.get(recorded.sourceHost),
      hosts.get(recorded.destinationHost),
    ]);
    if (vm && movedHere(vm.value, op.name, recorded)) return this.adoptMoved(op, vm.value);
    if (vm?.value.activeOperation !== op.name || !source || !destination) return false;
    const following = recorded.operation
      ? `following ${recorded.operation} on host ${source.name}`
      : `asking host ${source.name} again for the migration it may have started (request id ${migrationRequestId(operationId(op))})`;
    const adopted = await runner.adopt(
      op,
      instanceId,
      `adopted by gateway replica ${instanceId} (replica ${op.owner} stopped): ${following}`,
    );
    if (!adopted) return false;
    // As adopted: the stopped replica's last write may have come after the look that found it.
    const status = adopted.metadata.migration ?? recorded;
    const request: MigrateRequest = {
      destinationHost: destination.name,
      downtimeLimitMs: status.downtimeLimitMs,
      vmmMovesRam: status.vmmMovesRam,
    };
    runner.start(adopted, (context) => {
      const run = new MigrationRun(this.deps, context, vm.value, source, destination, request, status);
      return status.operation ? run.resume(status.operation) : run.askAgain();
    });
    return true;
  }

  /**
   * Ends SUCCEEDED the operation of a replica that stopped between recording the move (the VM on
   * the destination, not busy any more) and recording the operation's end.
   */
  private async adoptMoved(op: OperationRecord, vm: Vm): Promise<boolean> {
    const { runner, instanceId } = this.deps;
    const adopted = await runner.adopt(
      op,
      instanceId,
      `adopted by gateway replica ${instanceId} (replica ${op.owner} stopped): it had recorded the VM on host ${vm.host}; only the operation's end was left`,
    );
    if (!adopted) return false;
    runner.start(adopted, async (context) => {
      await context.step(MIGRATE_STEP.registry, "SUCCEEDED", `on host ${vm.host}`);
      return vm;
    });
    return true;
  }
}

/** Whether the move of migrate operation `operation` is what the registry records for `vm`. */
const movedHere = (vm: Vm, operation: string, status: MigrationStatus) =>
  vm.activeOperation === undefined &&
  vm.host === status.destinationHost &&
  vm.placement.reason === movedBy(status.sourceHost, operation);

/** The placement reason of a VM a migration moved: it names the operation, so the move is found by it. */
const movedBy = (source: string, operation: string) => `migrated from host '${source}' by ${operation}`;

/** Tries of a StartMigration whose answer is lost, pauses of 0.25 s doubling to 1 s in between. */
const START_TRIES = 4;
const START_PAUSE_MS = 250;
const START_PAUSE_MAX_MS = 1_000;

/** The request id of a migrate operation's StartMigration: the same on every try and every replica. */
const migrationRequestId = (operation: string) => `${operation}/migrate`;

/** One migrate operation's work, from StartMigration to the registry's record of where the VM is. */
class MigrationRun {
  private lastPhase = Phase.PHASE_UNSPECIFIED;
  /** The last phase before the end (the one a cancel interrupted). */
  private runningPhase = Phase.PHASE_SETTING_UP;
  private lastWrite = 0;
  private readonly finishedPhases = new Set<Phase>();
  private settled = false;
  /** Adopted without the migration's name: the source may have answered with a new migration. */
  private askedAgain = false;

  constructor(
    private readonly deps: VmOperationDeps,
    private readonly context: OperationContext,
    private readonly vm: Vm,
    private readonly source: HostRecord,
    private readonly destination: HostRecord,
    private readonly request: MigrateRequest,
    private status: MigrationStatus,
  ) {}

  private get stays(): string {
    return `the VM stays on host '${this.source.name}'`;
  }

  async run(): Promise<Vm> {
    return this.settle(() => this.startOnSource());
  }

  /**
   * An adoption of an operation whose migration's name was never recorded: StartMigration again,
   * with the same request id, and then on as the first run. No cancel is honoured before the
   * call: one recorded meanwhile does not mean nothing runs on the source, so it goes there.
   */
  async askAgain(): Promise<Vm> {
    this.askedAgain = true;
    return this.settle(() => this.startOnSource());
  }

  /** Follows an already started migration (`name` on the source) to its end: an adoption. */
  async resume(name: string): Promise<Vm> {
    return this.settle(() => Promise.resolve(name));
  }

  /** Adopted by another replica: that one finishes the operation, this one may touch nothing. */
  private get adoptedElsewhere(): boolean {
    return this.context.signal.aborted && isAbandonment(this.context.signal.reason);
  }

  private async settle(start: () => Promise<string>): Promise<Vm> {
    try {
      const name = await start();
      const outcome = await this.follow(name);
      if (this.adoptedElsewhere) throw toVplaneError(this.context.signal.reason);
      return outcome.t === "ended"
        ? await this.conclude(outcome.progress)
        : await this.reconcile(name, outcome);
    } catch (error) {
      // Whatever went wrong, a VM left marked busy could never be touched again.
      if (!this.settled && !this.adoptedElsewhere) await this.stayOnSource().catch(() => undefined);
      throw error;
    }
  }

  private async startOnSource(): Promise<string> {
    const { connections } = this.deps;
    const clients = connections.clientsOf(this.source.addresses);
    try {
      // Cancelled before it started: nothing ran anywhere (an adopter cannot know that).
      if (!this.askedAgain) await this.context.checkpoint();
      await this.context.step(MIGRATE_STEP.start, "RUNNING");
      // No signal: a StartMigration cut short may still have started; the cancel below reaches it.
      const started = await this.askedUntilAnswered(() =>
        connections.call("migration", "StartMigration", (options) =>
          unaryCall(
            clients.migration.startMigration.bind(clients.migration),
            {
              vm: this.vm.uid,
              destination: this.destination.addresses.migration,
              guestMemory: this.request.vmmMovesRam
                ? undefined
                : { path: this.vm.guestMemoryPath, sizeBytes: BigInt(this.vm.memoryBytes) },
              vmmMovesRam: this.request.vmmMovesRam ?? false,
              downtimeLimitMs: this.request.downtimeLimitMs ?? 0,
              noProgressTimeoutMs: 0,
              totalTimeoutMs: 0,
              requestId: migrationRequestId(this.context.id),
              // The VMM moves RAM to a file of the same name on the destination.
              destinationGuestMemory: this.request.vmmMovesRam
                ? { path: this.vm.guestMemoryPath, sizeBytes: BigInt(this.vm.memoryBytes) }
                : undefined,
            },
            options,
          ),
        ),
      );
      this.status = { ...this.status, operation: started.name };
      // Recorded at once: a replica adopting this operation follows the migration by this name.
      await this.context.progress(
        0,
        MIGRATE_STEP.start,
        `started ${started.name} on host ${this.source.name}`,
        this.status,
      );
      await this.context.step(MIGRATE_STEP.start, "SUCCEEDED", `${started.name} on host ${this.source.name}`);
      return started.name;
    } catch (error) {
      const cause = toVplaneError(error);
      await this.context
        .step(MIGRATE_STEP.start, "FAILED", `${cause.code} ${cause.reason}: ${cause.message}`)
        .catch(() => undefined);
      await this.stayOnSource();
      throw new StepFailure(`${MIGRATE_STEP.start} on host ${this.source.name}`, cause, this.stays);
    }
  }

  /**
   * StartMigration asked again, with the same request id, while its answer is lost (the source
   * may have started the migration: it answers a repeated id with the migration that id started,
   * so no migration runs on the source unfollowed while its VM is recorded there). Given up after
   * START_TRIES tries, as a refusal would be.
   */
  private async askedUntilAnswered<T>(ask: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ask();
      } catch (error) {
        if (attempt >= START_TRIES || !outcomeUnknown(error)) throw error;
        const cause = toVplaneError(error);
        // The answer may be a new migration that fails because a first one moved the VM: locate().
        this.askedAgain = true;
        await this.context.progress(
          0,
          MIGRATE_STEP.start,
          `StartMigration unanswered (${cause.code}): asking host ${this.source.name} again for the migration it may have started`,
        );
        await unansweredPause(attempt - 1, START_PAUSE_MS, START_PAUSE_MAX_MS);
      }
    }
  }

  /**
   * Mirrors the migration's progress until it ends. A cancel (or the operation's timeout) of the
   * gateway operation becomes CancelOperation on the migration service; following goes on, since
   * only the service's final phase says whether the cancel took effect.
   */
  private async follow(name: string): Promise<FollowOutcome> {
    const clients = this.deps.connections.clientsOf(this.source.addresses);
    const stopFollowing = new AbortController();
    let settleTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      if (this.adoptedElsewhere) {
        stopFollowing.abort(); // the migration goes on, followed by the adopter
        return;
      }
      void this.cancelOnSource(name);
      settleTimer = setTimeout(() => stopFollowing.abort(), SETTLE_AFTER_ABORT_MS);
    };
    const { signal } = this.context;
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const cancelPoll = setInterval(() => {
      if (!signal.aborted) this.context.checkpoint().catch(() => undefined); // aborts the signal on a cancel
    }, CANCEL_POLL_MS);
    try {
      return await followMigration(clients.migration, name, (progress) => this.mirror(progress), {
        signal: stopFollowing.signal,
      });
    } finally {
      clearInterval(cancelPoll);
      clearTimeout(settleTimer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  private async cancelOnSource(name: string): Promise<void> {
    const { connections } = this.deps;
    const clients = connections.clientsOf(this.source.addresses);
    const why = toVplaneError(this.context.signal.reason);
    const step = MIGRATE_STEP.phase(this.runningPhase);
    try {
      await connections.call("migration", "CancelOperation", (options) =>
        unaryCall(
          clients.migrationOperations.cancelOperation.bind(clients.migrationOperations),
          { name },
          options,
        ),
      );
      await this.context.progress(
        0,
        step,
        `${why.message}: cancel accepted by the migration service on host ${this.source.name}; the final state says whether it took effect`,
      );
    } catch (error) {
      const cause = toVplaneError(error);
      await this.context
        .progress(
          0,
          step,
          `${why.message}: CancelOperation failed (${cause.code} ${cause.reason}: ${cause.message}); following the migration to its end`,
        )
        .catch(() => undefined);
    }
  }

  private async mirror(progress: OperationProgress): Promise<void> {
    const terminal = TERMINAL_PHASES.has(progress.phase);
    const phaseChanged = progress.phase !== this.lastPhase;
    this.status = statusAfter(this.status, progress);
    if (phaseChanged) await this.markSteps(progress);
    this.lastPhase = progress.phase;
    if (!terminal) this.runningPhase = progress.phase;
    const now = Date.now();
    if (!phaseChanged && !terminal && now - this.lastWrite < MIRROR_INTERVAL_MS) return;
    this.lastWrite = now;
    const step =
      progress.phase === Phase.PHASE_COMPLETED
        ? MIGRATE_STEP.registry
        : progress.phase === Phase.PHASE_FAILED
          ? MIGRATE_STEP.phase(progress.failedPhase)
          : MIGRATE_STEP.phase(this.runningPhase);
    await this.context.progress(percentOf(progress), step, describeProgress(progress), this.status);
  }

  /** Steps follow phases: the ones passed SUCCEEDED, the current RUNNING, the failed one FAILED. */
  private async markSteps(progress: OperationProgress): Promise<void> {
    const listed = (phase: Phase) => !(this.request.vmmMovesRam && phase === Phase.PHASE_COPYING_RAM);
    const passed =
      progress.phase === Phase.PHASE_COMPLETED
        ? phasesBefore(Phase.PHASE_COMPLETED)
        : TERMINAL_PHASES.has(progress.phase)
          ? []
          : phasesBefore(progress.phase);
    for (const phase of passed) {
      if (!listed(phase) || this.finishedPhases.has(phase)) continue;
      this.finishedPhases.add(phase);
      await this.context.step(MIGRATE_STEP.phase(phase), "SUCCEEDED");
    }
    if (!TERMINAL_PHASES.has(progress.phase)) {
      await this.context.step(MIGRATE_STEP.phase(progress.phase), "RUNNING");
    } else if (progress.phase === Phase.PHASE_FAILED) {
      const error = errorOf(progress);
      await this.context.step(
        MIGRATE_STEP.phase(progress.failedPhase),
        "FAILED",
        `${error.code} ${error.reason}: ${error.message}`,
      );
    } else if (progress.phase === Phase.PHASE_CANCELLED) {
      await this.context.step(
        MIGRATE_STEP.phase(this.runningPhase),
        "ROLLED_BACK",
        "cancelled before switchover: the destination discarded what it received",
      );
    }
  }

  private async conclude(progress: OperationProgress): Promise<Vm> {
    if (progress.phase === Phase.PHASE_COMPLETED) {
      if (this.context.signal.aborted) {
        await this.context.progress(
          97,
          MIGRATE_STEP.registry,
          "the cancel came after the point of no return (switchover): the migration completed",
        );
      }
      return this.commitMove();
    }
    if (this.askedAgain && (await this.locate()) === "destination") {
      // The source forgot the first StartMigration (restarted, or past the finished operations it
      // keeps) and started a new one, which failed: the first had moved the VM.
      await this.context.progress(
        97,
        MIGRATE_STEP.registry,
        `${describeProgress(progress)}; the VM's interrupt controller is on host ${this.destination.name} (moved by this operation's first migration): recording it there`,
      );
      return this.commitMove();
    }
    await this.stayOnSource();
    if (progress.phase === Phase.PHASE_FAILED) {
      throw new StepFailure(
        `${MIGRATE_STEP.phase(progress.failedPhase)} on host ${this.source.name}`,
        errorOf(progress),
        this.stays,
        phaseName(progress.failedPhase),
      );
    }
    // CANCELLED: by a caller (CANCELLED) or by this operation's own timeout (FAILED with its error).
    const reason = this.context.signal.aborted ? toVplaneError(this.context.signal.reason) : undefined;
    throw new StepFailure(
      `${MIGRATE_STEP.phase(this.runningPhase)} on host ${this.source.name}`,
      reason?.code === "DEADLINE_EXCEEDED" ? reason : errorOf(progress),
      this.stays,
      phaseName(this.runningPhase),
    );
  }

  /**
   * The migration service's operation could not be followed to its end (that service restarted,
   * or stayed unreachable). Where the VM's devices are decides: on the destination (which keeps
   * an import only once the source commits it), the move happened; else the VM stays.
   */
  private async reconcile(name: string, outcome: Extract<FollowOutcome, { t: "lost" }>): Promise<Vm> {
    const where = await this.locate();
    const lost = new VplaneError({
      code: "UNAVAILABLE",
      reason: "MIGRATION_OUTCOME_LOST",
      message: `lost track of ${name} on host ${this.source.name} (${outcome.why.code} ${outcome.why.reason}: ${outcome.why.message})`,
    });
    if (where === "destination") {
      await this.context.progress(
        97,
        MIGRATE_STEP.registry,
        `${lost.message}; the VM's interrupt controller is on host ${this.destination.name}: recording it there`,
      );
      return this.commitMove();
    }
    await this.stayOnSource(where === "source" ? undefined : "FAILED");
    throw new StepFailure(
      `${MIGRATE_STEP.phase(this.runningPhase)} on host ${this.source.name}`,
      lost,
      where === "source"
        ? `the VM's interrupt controller is on host '${this.source.name}': ${this.stays}`
        : "neither host says where the VM's devices are: the VM is marked FAILED (delete it to clean up)",
      phaseName(this.runningPhase),
    );
  }

  /**
   * The VM's interrupt controller (every VM has one) on `host`: null when that service has none,
   * undefined when it could not be asked.
   */
  private async controllerOn(host: HostRecord): Promise<Controller | null | undefined> {
    const { connections } = this.deps;
    const clients = connections.clientsOf(host.addresses);
    try {
      const answer = await connections.call("interrupt-controller", "GetController", (options) =>
        unaryCall(
          clients.interrupt.getController.bind(clients.interrupt),
          { name: controllerName(this.vm) },
          options,
        ),
      );
      return answer.controller ?? null;
    } catch (error) {
      return toVplaneError(error).code === "NOT_FOUND" ? null : undefined;
    }
  }

  /** Which host holds the VM's interrupt controller. */
  private async locate(): Promise<"destination" | "source" | "unknown"> {
    if (await this.controllerOn(this.destination)) {
      // An import not yet committed is discarded once the source's stream is gone: look again.
      await sleep(1000);
      if (await this.controllerOn(this.destination)) return "destination";
    }
    return (await this.controllerOn(this.source)) ? "source" : "unknown";
  }

  /**
   * Records the VM on the destination: its host, the RAM file the destination's devices use (the
   * destination's migration service lands RAM at guest-ram/{uid}.ram in its data folder, not where
   * the gateway first put it), and both hosts' usage, in one CAS transaction.
   */
  private async commitMove(): Promise<Vm> {
    const { vms } = this.deps;
    await this.context.step(MIGRATE_STEP.registry, "RUNNING");
    const guestMemoryPath = await this.ramPathOnDestination();
    try {
      // Asked again while the registry does not answer: a try that applied unanswered is found
      // at the next (the VM on the destination already, the usages not moved twice).
      const moved = await this.context.untilAnswered(() =>
        vms.updatePlacement(this.vm.tenant, this.vm.name, (current) => {
          const { activeOperation: _done, ...rest } = current;
          return {
            ...rest,
            host: this.destination.name,
            guestMemoryPath,
            placement: {
              ...current.placement,
              reason: movedBy(this.source.name, `operations/${this.context.id}`),
            },
            updateTime: new Date().toISOString(),
          };
        }),
      );
      if (!moved) {
        throw new VplaneError({ code: "ABORTED", reason: "VM_VANISHED", message: "the VM record is gone" });
      }
      this.settled = true;
      await this.context.step(
        MIGRATE_STEP.registry,
        "SUCCEEDED",
        `host ${this.source.name} -> ${this.destination.name}; guest RAM ${guestMemoryPath || "(private memory of the devices)"}`,
      );
      return moved;
    } catch (error) {
      const cause = toVplaneError(error);
      await this.context.step(MIGRATE_STEP.registry, "FAILED", cause.message).catch(() => undefined);
      throw new StepFailure(
        MIGRATE_STEP.registry,
        cause,
        `the VM runs on host '${this.destination.name}' but the registry could not record it`,
      );
    }
  }

  /** The guest RAM binding of the VM's controller on the destination, as that service reports it. */
  private async ramPathOnDestination(): Promise<string> {
    const controller = await this.controllerOn(this.destination);
    // If the destination cannot say: where its migration service documents that RAM lands
    // (StartMigrationRequest.guest_memory); the VMM's own memory when it moves RAM itself.
    return controller?.guestMemory?.path ?? (this.request.vmmMovesRam ? "" : `guest-ram/${this.vm.uid}.ram`);
  }

  /** Clears the VM's busy mark (it stays where it is); `state` when its whereabouts are unknown. */
  private async stayOnSource(state?: Vm["state"]): Promise<void> {
    const operation = `operations/${this.context.id}`;
    await this.context.untilAnswered(() =>
      this.deps.vms.update(this.vm.tenant, this.vm.name, (current) => {
        if (current.activeOperation !== operation) return undefined;
        const { activeOperation: _done, ...rest } = current;
        return { ...rest, ...(state ? { state } : {}), updateTime: new Date().toISOString() };
      }),
    );
    this.settled = true;
  }
}
