import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import type { CreateControllerRequest } from "@vplane/proto/gen/vplane/interrupt/v1/controller_crud";
import type { CreateSmmuRequest } from "@vplane/proto/gen/vplane/iommu/v1/smmu_crud";
import type { AttachDeviceRequest } from "@vplane/proto/gen/vplane/iommu/v1/smmu_config";
import type { Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import type { TransactionOp } from "@vplane/store";
import { toVplaneError, unaryCall, type VplaneError } from "@vplane/service-kit";
import { backendToProto, chooseBackend } from "./backend-choice.js";
import { controllerName, smmuName } from "./device-names.js";
import { outcomeUnknown } from "./outcome-unknown.js";
import type { HostConnections } from "../hosts/host-clients.js";
import { StepFailure, type OperationContext } from "../operations/operation-runner.js";
import { operationError } from "../registry/registry-error.js";
import type { HostRecord } from "../schemas/host-schema.js";
import type { BackendChoice, Vm } from "../schemas/vm-schema.js";

const MODES: Record<string, ControllerMode> = {
  xive: ControllerMode.CONTROLLER_MODE_XIVE,
  xics: ControllerMode.CONTROLLER_MODE_XICS,
  dual: ControllerMode.CONTROLLER_MODE_DUAL,
};

export const STEP = {
  capabilities: "host.GetCapabilities",
  controller: "interrupt-controller.CreateController",
  smmu: (name: string) => `iommu.CreateSmmu(${name})`,
  attach: (smmu: string, device: { physicalSid: number; virtualSid: number }) =>
    `iommu.AttachDevice(${smmu}: ${device.physicalSid}->${device.virtualSid})`,
  deleteSmmu: (name: string) => `iommu.DeleteSmmu(${name})`,
  deleteController: "interrupt-controller.DeleteController",
  registry: "registry.commit",
} as const;

/** The steps a create runs, in order (listed in the operation before it starts). */
export function createSteps(vm: Vm): string[] {
  return [
    STEP.capabilities,
    STEP.controller,
    ...vm.iommu.smmus.flatMap((s) => [STEP.smmu(s.name), ...s.devices.map((d) => STEP.attach(s.name, d))]),
    STEP.registry,
  ];
}

export function deleteSteps(vm: Vm): string[] {
  return [...vm.iommu.smmus.map((s) => STEP.deleteSmmu(s.name)), STEP.deleteController, STEP.registry];
}

function isNotFound(error: unknown): boolean {
  return (error as VplaneError).code === "NOT_FOUND";
}

/** One delete of a device: the step it is recorded as, and the call (NOT_FOUND: already gone). */
interface DeviceDelete {
  step: string;
  run: () => Promise<unknown>;
}

/** Deletes the VM's controller. */
function controllerDelete(
  connections: HostConnections,
  host: HostRecord,
  vm: Vm,
  requestId: string,
): DeviceDelete {
  const clients = connections.clientsOf(host.addresses);
  return {
    step: STEP.deleteController,
    run: () =>
      connections.call("interrupt-controller", "DeleteController", (o) =>
        unaryCall(
          clients.interrupt.deleteController.bind(clients.interrupt),
          { name: controllerName(vm), requestId },
          o,
        ),
      ),
  };
}

/** Deletes one SMMU of the VM with its devices. */
function smmuDelete(
  connections: HostConnections,
  host: HostRecord,
  vm: Vm,
  smmu: string,
  requestId: string,
): DeviceDelete {
  const clients = connections.clientsOf(host.addresses);
  return {
    step: STEP.deleteSmmu(smmu),
    run: () =>
      connections.call("iommu", "DeleteSmmu", (o) =>
        unaryCall(clients.iommu.deleteSmmu.bind(clients.iommu), { name: smmuName(vm, smmu), requestId }, o),
      ),
  };
}

/**
 * Runs a create whose undo is registered before it is sent: a create whose answer was lost may
 * have been applied, and deleting what does not exist answers NOT_FOUND. A service that refused
 * the create outright applied nothing: its undo goes. The call is not aborted by a cancel: cut off
 * in flight, it could land on the host after the rollback ran; cancel is honoured at the next
 * checkpoint, one call later (bounded by the call's deadline).
 */
async function createUndoable(
  undo: DeviceDelete[],
  entry: DeviceDelete,
  create: () => Promise<unknown>,
): Promise<void> {
  undo.push(entry);
  try {
    await create();
  } catch (error) {
    if (!outcomeUnknown(error)) undo.pop();
    throw error;
  }
}

/**
 * Creates a VM's devices on its host, all or nothing: the controller on the interrupt-controller
 * service, then each SMMU on the iommu service. Each create carries a request_id derived from
 * the operation, so a retried step is not done twice. When a step fails, or the operation is
 * cancelled or times out, what was created is deleted again in reverse order, and the thrown
 * StepFailure says which step failed, why, and how the rollback went.
 * `commit` gives the writes that record the result (the VM READY) and the operation's response:
 * made with the last checkpoint, in the transaction that also ends the operation SUCCEEDED; not
 * at all when a cancel came first; if they fail, that too rolls back. Returns the backend
 * choices (auto resolved against the host's capabilities).
 */
export async function provisionVm(
  context: OperationContext,
  connections: HostConnections,
  host: HostRecord,
  vm: Vm,
  commit: (resolved: Vm["resolved"]) => { ops: TransactionOp[]; response: unknown },
): Promise<Vm["resolved"]> {
  const clients = connections.clientsOf(host.addresses);
  const undo: DeviceDelete[] = [];
  const steps = createSteps(vm);
  let current: string = STEP.capabilities;
  const percentAfter = (step: string) => Math.round(((steps.indexOf(step) + 1) / steps.length) * 90);
  const guestMemory = { path: vm.guestMemoryPath, sizeBytes: BigInt(vm.memoryBytes) };
  try {
    // Asking for capabilities changes nothing on the host, and neither does the create's own
    // transaction, just before: the first checkpoint comes before the second call that does.
    await context.step(current, "RUNNING");
    const wantsIommu = vm.iommu.smmus.length > 0;
    // Asked once per connection to the service (fixed for its process's life): most creates
    // find the answer kept and make no call here.
    const [interruptCaps, iommuCaps] = await Promise.all([
      capabilitiesOf(() => connections.capabilities("interrupt-controller", host.addresses)),
      wantsIommu ? capabilitiesOf(() => connections.capabilities("iommu", host.addresses)) : undefined,
    ]);
    const resolved: Vm["resolved"] = {
      interruptController: chooseBackend(
        vm.interruptController.backend as BackendChoice["backend"] | "auto",
        "interrupt-controller",
        interruptCaps,
      ),
      ...(wantsIommu
        ? { iommu: chooseBackend(vm.iommu.backend as BackendChoice["backend"] | "auto", "iommu", iommuCaps) }
        : {}),
    };
    await context.step(current, "SUCCEEDED", `interrupt controller: ${resolved.interruptController!.reason}`);
    await context.progress(percentAfter(current), current, "backends chosen");

    current = STEP.controller;
    await context.step(current, "RUNNING");
    // No checkpoint before this first change: the create's own transaction wrote the record one
    // GetCapabilities round ago. A cancel through this replica (or the timeout) is seen here; one
    // through another replica at the next checkpoint, whose rollback deletes the controller.
    context.signal.throwIfAborted();
    const createController: CreateControllerRequest = {
      controller: {
        name: "",
        vm: vm.uid,
        mode: MODES[vm.interruptController.mode] ?? ControllerMode.CONTROLLER_MODE_UNSPECIFIED,
        activeMode: 0,
        nrServers: vm.interruptController.nrServers,
        backend: backendToProto(resolved.interruptController!.backend),
        guestMemory,
        connectedServers: [],
        sourceCount: 0,
        createTime: undefined,
        nrIrqs: undefined,
      },
      requestId: `${context.id}/controller`,
    };
    await createUndoable(
      undo,
      controllerDelete(connections, host, vm, `${context.id}/rollback/controller`),
      () =>
        connections.call("interrupt-controller", "CreateController", (o) =>
          unaryCall(clients.interrupt.createController.bind(clients.interrupt), createController, o),
        ),
    );
    await context.step(current, "SUCCEEDED", `backend ${resolved.interruptController!.backend}`);
    await context.progress(percentAfter(current), current, "interrupt controller created");

    for (const smmu of vm.iommu.smmus) {
      current = STEP.smmu(smmu.name);
      await context.step(current, "RUNNING");
      await context.checkpoint();
      const createSmmu: CreateSmmuRequest = {
        smmu: {
          name: "",
          vm: vm.uid,
          smmuId: smmu.name,
          backend: backendToProto(resolved.iommu!.backend),
          features: {
            sidBits: smmu.sidBits,
            ssidBits: smmu.ssidBits,
            granules: [],
            oasBits: 0,
            asid16: true,
            vmid16: true,
            rangeInvalidation: true,
            pri: smmu.pri,
          },
          guestMemory,
          vmid: 0,
          createTime: undefined,
          stage2GranuleBytes: 0,
          eventQueueDepth: 0,
          pageRequestTimeoutMs: 0,
        },
        requestId: `${context.id}/smmu/${smmu.name}`,
      };
      await createUndoable(
        undo,
        smmuDelete(connections, host, vm, smmu.name, `${context.id}/rollback/smmu/${smmu.name}`),
        () =>
          connections.call("iommu", "CreateSmmu", (o) =>
            unaryCall(clients.iommu.createSmmu.bind(clients.iommu), createSmmu, o),
          ),
      );
      await context.step(current, "SUCCEEDED", `backend ${resolved.iommu!.backend}`);
      await context.progress(percentAfter(current), current, `SMMU ${smmu.name} created`);
      // Deleting the SMMU (its undo above) removes its devices too: no undo per device.
      for (const device of smmu.devices) {
        current = STEP.attach(smmu.name, device);
        await context.step(current, "RUNNING");
        await context.checkpoint();
        const attach: AttachDeviceRequest = {
          name: smmuName(vm, smmu.name),
          streamId: device.physicalSid,
          virtualStreamId: device.virtualSid,
          pageRequests: smmu.pri,
          requestId: `${context.id}/attach/${smmu.name}/${device.physicalSid}`,
        };
        await connections.call("iommu", "AttachDevice", (o) =>
          unaryCall(clients.iommu.attachDevice.bind(clients.iommu), attach, o),
        );
        await context.step(current, "SUCCEEDED");
        await context.progress(percentAfter(current), current, `device ${device.physicalSid} attached`);
      }
    }
    current = STEP.registry;
    await context.step(current, "RUNNING");
    const result = commit(resolved);
    await context.checkpoint(result.ops, result.response);
    return resolved;
  } catch (error) {
    const cause = operationError(error);
    await context
      .step(current, "FAILED", `${cause.code} ${cause.reason}: ${cause.message}`)
      .catch(() => undefined);
    const rollback = await rollBack(context, undo);
    throw new StepFailure(`${current} on host ${host.name}`, cause, rollback);
  }
}

/** Runs the undo steps newest first (a NOT_FOUND counts as undone); says how it went. */
async function rollBack(context: OperationContext, undo: DeviceDelete[]): Promise<string> {
  if (undo.length === 0) return "nothing to roll back";
  const failed: string[] = [];
  for (const { step, run } of [...undo].reverse()) {
    try {
      await run();
      await context.step(step, "ROLLED_BACK").catch(() => undefined);
    } catch (error) {
      if (isNotFound(error)) {
        await context.step(step, "ROLLED_BACK", "already gone").catch(() => undefined);
        continue;
      }
      const cause = toVplaneError(error);
      failed.push(`${step}: ${cause.code} ${cause.message}`);
      await context.step(step, "ROLLBACK_FAILED", cause.message).catch(() => undefined);
    }
  }
  return failed.length === 0
    ? `rolled back: ${undo
        .map((u) => u.step)
        .reverse()
        .join(", ")}`
    : `ROLLBACK INCOMPLETE (${failed.join("; ")}); the VM is left FAILED, delete it to retry the cleanup`;
}

/** True when the rollback left nothing behind (see rollBack's message). */
export function rollbackComplete(failure: StepFailure): boolean {
  return !failure.rollback.startsWith("ROLLBACK INCOMPLETE");
}

/**
 * Deletes a VM's devices: each SMMU, then the controller. NOT_FOUND counts as deleted (a retried
 * delete, or a create that never got that far). The first other failure stops the delete.
 */
export async function deprovisionVm(
  context: OperationContext,
  connections: HostConnections,
  host: HostRecord,
  vm: Vm,
): Promise<void> {
  const steps = deleteSteps(vm);
  const run = async ({ step, run: call }: DeviceDelete) => {
    await context.step(step, "RUNNING");
    try {
      await call();
      await context.step(step, "SUCCEEDED");
    } catch (error) {
      if (!isNotFound(error)) {
        const cause = toVplaneError(error);
        await context.step(step, "FAILED", `${cause.code} ${cause.reason}: ${cause.message}`);
        throw new StepFailure(`${step} on host ${host.name}`, cause, "");
      }
      await context.step(step, "SUCCEEDED", "already gone");
    }
    await context.progress(Math.round(((steps.indexOf(step) + 1) / steps.length) * 90), step, `${step} done`);
  };
  for (const smmu of vm.iommu.smmus)
    await run(smmuDelete(connections, host, vm, smmu.name, `${context.id}/smmu/${smmu.name}`));
  await run(controllerDelete(connections, host, vm, `${context.id}/controller`));
}

/**
 * Undoes what an abandoned create (its gateway replica stopped mid-way) may have made on the
 * host, as its own rollback would have: every SMMU of the VM, newest first, then the controller.
 * Each delete is idempotent (NOT_FOUND: never made, or already gone), so it is safe to run
 * again, and after whatever part of its own rollback the stopped replica got to. Says how it went.
 */
export async function rollBackAbandonedCreate(
  context: OperationContext,
  connections: HostConnections,
  host: HostRecord,
  vm: Vm,
): Promise<string> {
  return rollBack(context, [
    controllerDelete(connections, host, vm, `${context.id}/recovery/controller`),
    ...vm.iommu.smmus.map((smmu) =>
      smmuDelete(connections, host, vm, smmu.name, `${context.id}/recovery/smmu/${smmu.name}`),
    ),
  ]);
}

async function capabilitiesOf(
  fetch: () => Promise<Capabilities | undefined>,
): Promise<Capabilities | undefined> {
  try {
    return await fetch();
  } catch {
    return undefined; // chooseBackend says the capabilities were not reported
  }
}
