// The POWER9 guest's Node entry (Node 20.11, bundled): the probe, a first pass over the real
// KVM XIVE device, then the differential contract both ways (native → emulated, emulated →
// native), the adopt scenario, a controller migrated through the service both ways, and last the kernel's answer to a second queue on one vCPU in a
// process of its own; each step reported over the serial console.
import { spawn } from "node:child_process";
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
import { secondQueueScenario } from "./second-queue-scenario.js";
import { serviceMigrationScenario } from "./service-migration-scenario.js";

const SECOND_QUEUE = "second-queue";
if (process.argv[2] === SECOND_QUEUE) {
  // The child: reports, then holds the device open until the guest powers off.
  secondQueueScenario();
  process.send?.("reported");
  setInterval(() => undefined, 1 << 30);
} else {
  await mainScenarios();
}

async function mainScenarios(): Promise<void> {
  report("env", {
    node: process.version,
    arch: process.arch,
    kernelCalls: kernelCallsAvailability(),
    uptime: process.uptime(),
  });
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
    report("adopt-failed", {
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }

  report("service-timing", {
    step: "guest uptime at the service scenario",
    ms: Math.round(process.uptime() * 1000),
  });
  try {
    await serviceMigrationScenario();
  } catch (error) {
    report("service-failed", {
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }

  await secondQueueInItsOwnProcess();
}

/** Runs secondQueueScenario in a child that outlives this process (its device is never released). */
function secondQueueInItsOwnProcess(): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [process.argv[1]!, SECOND_QUEUE], {
      detached: true,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const done = () => {
      clearTimeout(timer);
      child.removeAllListeners();
      child.disconnect?.();
      child.unref();
      resolve();
    };
    const timer = setTimeout(done, 60_000);
    child.once("message", done);
    child.once("exit", done);
  });
}
