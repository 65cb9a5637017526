import { openSync, writeFileSync } from "node:fs";
import { KvmCap, MappedRegion } from "@vplane/host-kernel";
import { KvmVm, KvmXiveDevice } from "@vplane/interrupt-controller/native";
import { observe } from "./observe.js";

const RAM_BYTES = 1 << 20;
const queue = (qaddr: bigint) => ({ flags: 1, qshift: 16, qaddr, qtoggle: 1, qindex: 0 });

/**
 * The kernel's answer to a second queue priority on one vCPU, straight from the device (the
 * native backend never sends it: see refuseSecondQueue). The refusal frees the escalation
 * interrupt the first queue holds and releasing the device afterwards oopses the 6.1 kernel,
 * so this runs in a process of its own that reports and then keeps its fds open until the
 * guest powers off: the device is never released. Observations: "second queue: ...".
 */
export function secondQueueScenario(): void {
  const ramPath = "/tmp/second-queue.ram";
  writeFileSync(ramPath, new Uint8Array(RAM_BYTES));
  const vm = KvmVm.create();
  const ram = MappedRegion.map(openSync(ramPath, "r+"), 0, RAM_BYTES);
  vm.setMemoryRegion(0, 0n, RAM_BYTES, ram.address);
  const device = KvmXiveDevice.create(vm, 4096);
  device.setNrServers(1);
  vm.enablePapr(0);
  vm.enableVcpuCap(0, KvmCap.KVM_CAP_PPC_IRQ_XIVE, [device.fd, 0]);
  observe("second queue: EQ_CONFIG 0/6", () => device.setQueueConfig(0, 6, queue(0x10000n)));
  observe("second queue: EQ_CONFIG 0/5 (a second priority of vCPU 0)", () =>
    device.setQueueConfig(0, 5, queue(0x20000n)),
  );
  observe("second queue: EQ_CONFIG get 0/5 after the refusal", () => device.getQueueConfig(0, 5));
  observe("second queue: EQ_CONFIG get 0/6 after the refusal", () => device.getQueueConfig(0, 6));
}
