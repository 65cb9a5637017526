import { VplaneError } from "@vplane/service-kit";
import type { Vm } from "../schemas/vm-schema.js";

/** ABORTED (409) while another operation runs on the VM (DESIGN.md: conflicting calls are refused). */
export function refuseWhileBusy(vm: Pick<Vm, "name" | "activeOperation">): void {
  if (vm.activeOperation) {
    throw new VplaneError({
      code: "ABORTED",
      reason: "OPERATION_IN_PROGRESS",
      message: `VM '${vm.name}' has a running operation (${vm.activeOperation}); wait for it or cancel it`,
    });
  }
}
