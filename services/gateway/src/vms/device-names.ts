// The resource names a VM's devices have on its host's services, from the VM's host-side id.
import type { Vm } from "../schemas/vm-schema.js";

export const controllerName = (vm: Pick<Vm, "uid">) => `vms/${vm.uid}/controller`;
export const smmuName = (vm: Pick<Vm, "uid">, smmu: string) => `vms/${vm.uid}/smmus/${smmu}`;
