// The tier's entry inside the arm64 guest (bundled with esbuild into /vplane/guest.mjs; koffi
// stays a runtime require beside it). Reports what the environment offers, the native SMMU's
// features (from IOMMU_GET_HW_INFO) and the native probe's answer, then runs the SMMU contract suite on the native backend
// over the real kernel, one report per scenario. The init script prints the end report with
// this process's exit status.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { kernelCallsAvailability } from "@vplane/host-kernel";
import { probeNativeSmmu } from "@vplane/iommu/native";
import { CONTRACT_SCENARIOS } from "@vplane/iommu/testing";
import { report } from "@vplane/kernel-tier-runner/guest";
import { nativeRig } from "./native-rig.js";
import { runServiceScenarios } from "./service-scenarios.js";

const messageOf = (error: unknown) =>
  error instanceof Error ? `${error.message}\n${error.stack}` : String(error);

const calls = kernelCallsAvailability();
report("env", {
  node: process.version,
  arch: process.arch,
  kernel: readFileSync("/proc/version", "utf8").trim(),
  iommufd: existsSync("/dev/iommu"),
  vfioDevices: existsSync("/dev/vfio/devices") ? readdirSync("/dev/vfio/devices") : [],
  iommus: existsSync("/sys/class/iommu") ? readdirSync("/sys/class/iommu") : [],
  kernelCalls: calls.available ? `available (${calls.arch})` : calls.reason,
});

report("probe", probeNativeSmmu());

let failed = false;
try {
  const rig = nativeRig();
  report("features", { features: rig.backend.features, idr: rig.backend.objects.hwInfo.smmuv3?.idr });
  rig.close();
} catch (error) {
  failed = true;
  report("features", { error: messageOf(error) });
}

for (const scenario of CONTRACT_SCENARIOS) {
  const started = Date.now();
  try {
    const rig = nativeRig();
    try {
      report("contract", { name: scenario.name, result: await scenario.run(rig), ms: Date.now() - started });
    } finally {
      rig.close();
    }
  } catch (error) {
    failed = true;
    report("contract", { name: scenario.name, error: messageOf(error), ms: Date.now() - started });
  }
}
// The service's own handlers on the same kernel: NATIVE SMMUs made by CreateSmmu and
// ImportDeviceState, the VMM handoff, migration native <-> emulated.
try {
  report("service", await runServiceScenarios());
} catch (error) {
  failed = true;
  report("service", { error: messageOf(error) });
}
process.exitCode = failed ? 1 : 0;
