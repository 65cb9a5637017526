import { StoreUnavailableError } from "@vplane/store";
import type { OperationRecord } from "../operations/operation-records.js";
import type { OperationContext } from "../operations/operation-runner.js";
import { unansweredPause } from "../registry/unanswered-pause.js";
import type { VmRegistry } from "../registry/vm-registry.js";
import type { Vm } from "../schemas/vm-schema.js";
import type { VmOperationDeps } from "./vm-operation-deps.js";

/**
 * Follows an operation's start (the transaction that wrote `written` and recorded the operation
 * RUNNING under this replica: a create's insert, a delete's or a migrate's start) that the
 * registry left unanswered past its read-back, so the request answered 503. Had it applied, the
 * operation is recorded RUNNING under this replica, which is alive (recovery takes over only
 * stopped replicas' operations), the VM is marked busy with it, and a retry with the request's
 * Idempotency-Key is answered that operation: nothing would ever run or end it. So the VM is read
 * back again, after growing pauses, until the registry answers; `run` is then called with the
 * revision of what the start wrote, if it applied. Should this replica stop first, its operation
 * is a stopped replica's, which recovery takes over.
 */
export function followUnanswered(vms: VmRegistry, written: Vm, run: (revision: number) => void): void {
  void (async () => {
    for (let attempt = 0; ; attempt++) {
      // 0.25 s doubling to 5 s; unreferenced: a replica shutting down does not wait for it.
      await unansweredPause(attempt, 250, 5_000, false);
      let revision: number | undefined;
      try {
        revision = await vms.appliedAlready(written);
      } catch (error) {
        if (error instanceof StoreUnavailableError) continue;
        return; // a registry that answers but cannot be read (closed): nothing to follow
      }
      if (revision !== undefined) run(revision);
      return;
    }
  })();
}

/**
 * Writes an operation's start (`write`: the transaction that writes `written` and records
 * `operation`, as VmRegistry.replace does, reading back one left unanswered) and runs `work`
 * under it; a start still unanswered after its read-back is thrown (503) and followed.
 */
export async function writeAndStart(
  deps: Pick<VmOperationDeps, "vms" | "runner">,
  written: Vm,
  operation: OperationRecord,
  work: (context: OperationContext) => Promise<unknown>,
  write: () => Promise<number>,
): Promise<void> {
  let revision: number;
  try {
    revision = await write();
  } catch (error) {
    if (error instanceof StoreUnavailableError)
      followUnanswered(deps.vms, written, (applied) => deps.runner.start(operation, work, applied));
    throw error;
  }
  deps.runner.start(operation, work, revision);
}
