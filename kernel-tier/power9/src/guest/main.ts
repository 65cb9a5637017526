// The POWER9 guest's Node entry (Node 20.11, bundled): the probe, a first pass over the real
// KVM XIVE device, then the differential contract both ways (native → emulated, emulated →
// native), each step reported over the serial console.
import { kernelCallsAvailability } from "@vplane/host-kernel";
import {
  KvmVm,
  KvmXiveDevice,
  openContractBackend,
  probeNativeXive,
} from "@vplane/interrupt-controller/native";
import { report } from "@vplane/kernel-tier-runner/guest";
import { runXiveContract } from "../contract/xive-contract.js";
import { adoptScenario } from "./adopt-scenario.js";
import { observe } from "./observe.js";

report("env", { node: process.version, arch: process.arch, kernelCalls: kernelCallsAvailability() });
report("probe", probeNativeXive());

const ESB_GET = 0x800;
const ESB_SET_PQ_00 = 0xc00;
const IRQ = 16;

const vm = KvmVm.create();
const device = KvmXiveDevice.create(vm, 4096);
try {
  observe("second device", () => KvmXiveDevice.create(vm, 4096));
  observe("NR_SERVERS 4", () => device.setNrServers(4));
  observe(`SOURCE ${IRQ}`, () => device.initSource(IRQ, false, false));
  observe("SOURCE_CONFIG of an irq in no block", () => device.setSourceConfig(4096, 0n));
  observe("unknown group", () => device.setAttr(99, 0));
  observe("ESB GET after SOURCE", () => device.esbAccess(IRQ, true, ESB_GET, 8, false));
  observe("ESB SET_PQ_00", () => device.esbAccess(IRQ, true, ESB_SET_PQ_00, 8, false));
  observe("ESB GET after SET_PQ_00", () => device.esbAccess(IRQ, true, ESB_GET, 8, false));
} finally {
  device.close();
  vm.close();
}

for (const [origin, target] of [
  ["NATIVE", "EMULATED"],
  ["EMULATED", "NATIVE"],
] as const) {
  const run = `${origin.toLowerCase()}-to-${target.toLowerCase()}`;
  try {
    let index = 0;
    const observations = runXiveContract(openContractBackend, origin, target, "/tmp", (observation) =>
      report("contract", { run, index: index++, observation }),
    );
    report("contract-end", { run, steps: observations.length });
  } catch (error) {
    report("contract-failed", {
      run,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }
}

try {
  await adoptScenario();
} catch (error) {
  report("adopt-failed", { error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
}
