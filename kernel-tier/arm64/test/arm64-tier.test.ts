// The Arm kernel tier: a real arm64 7.3 kernel's iommufd nesting on QEMU's SMMUv3 (stage 1 and
// stage 2, S2FWB forced by test-force-s2fwb.patch), driven by the native SMMU backend in the
// guest's Node 24 through koffi, with QEMU's edu PCI device assigned through VFIO.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CONTRACT_SCENARIOS, compareWithEmulated, writeContractFixture } from "@vplane/iommu/testing";
import { bootGuest, tierCache, tierSkipReason, type BootResult } from "@vplane/kernel-tier-runner";
import { TranslationOutcome } from "@vplane/proto/gen/vplane/iommu/v1/translation";
import type { SmmuFeatures } from "@vplane/smmuv3";
import { findArm64Artefacts } from "../src/arm64-artefacts.js";
import { arm64QemuArguments, buildArm64Initramfs } from "../src/arm64-machine.js";
import { DMA_PATTERN } from "../src/guest/service-scenarios.js";

const lookup = findArm64Artefacts();
const skip = tierSkipReason("Arm kernel tier", lookup);

interface EnvReport {
  node: string;
  arch: string;
  kernel: string;
  iommufd: boolean;
  vfioDevices: string[];
  iommus: string[];
  kernelCalls: string;
}

interface ContractReport {
  name: string;
  result?: Record<string, unknown>;
  error?: string;
  ms: number;
}

interface SelftestReport {
  exit: number;
  totals: string;
  started: number;
  ended: number;
  failed: string;
}

describe("Arm kernel tier: a real arm64 kernel's iommufd under QEMU virt + SMMUv3 (nested)", { skip }, () => {
  let boot: BootResult;
  let initrd: string | undefined;

  before(async () => {
    if (!lookup.found) throw new Error(lookup.reason);
    const t0 = Date.now();
    initrd = await buildArm64Initramfs(lookup.artefacts);
    const assembled = Date.now() - t0;
    boot = await bootGuest({
      qemu: lookup.artefacts.qemu,
      args: arm64QemuArguments(lookup.artefacts, initrd),
      timeoutMs: Number(process.env.VPLANE_TIER_TIMEOUT_MS ?? 300_000),
    });
    console.log(`arm64 tier: initramfs ${assembled} ms, boot + guest run ${boot.durationMs} ms`);
    // .ci/run prints it beside the prepare step's time.
    writeFileSync(join(tierCache(), "arm64-last-run-seconds"), ((Date.now() - t0) / 1000).toFixed(0));
    if (boot.failure || boot.endStatus !== 0 || process.env.VPLANE_TIER_CONSOLE)
      console.log(boot.console.slice(-80).join("\n"));
  });

  after(() => {
    if (initrd) rmSync(dirname(initrd), { recursive: true, force: true });
  });

  const report = <T>(kind: string): T => {
    const found = boot.reports.find((r) => r.kind === kind);
    assert.ok(found, `the guest sent no "${kind}" report (${boot.failure ?? "it ended"})`);
    return found.payload as T;
  };

  it("the guest boots the tier's kernel and its Node entry ends with status 0", () => {
    assert.equal(boot.failure, undefined);
    assert.equal(boot.endStatus, 0);
  });

  it("environment: arm64 Node with koffi, /dev/iommu, an SMMUv3 and edu's VFIO cdev", () => {
    const env = report<EnvReport>("env");
    assert.equal(env.arch, "arm64");
    assert.match(env.kernel, /^Linux version 7\.3\./);
    assert.match(env.kernelCalls, /^available \(arm64\)/);
    assert.equal(env.iommufd, true);
    assert.ok(
      env.iommus.some((name) => name.startsWith("smmu3.")),
      `SMMUv3 instances: ${env.iommus.join(", ")}`,
    );
    assert.equal(env.vfioDevices.length, 1, `VFIO cdevs: ${env.vfioDevices.join(", ")}`);
  });

  it("the native probe, asked on the real kernel, says available (HW_INFO SMMUv3, NEST_PARENT, vIOMMU with FWB forced)", () => {
    const probe = report<{ available: boolean; unavailableCode: string; unavailableReason: string }>("probe");
    assert.equal(probe.available, true, `${probe.unavailableCode}: ${probe.unavailableReason}`);
  });

  // The kernel's own selftest checks that the environment is sound; its result is printed, it
  // does not gate (some of its cases need what QEMU's machine lacks, e.g. dma-buf exporters).
  it("environment check: the kernel's iommufd selftest ran in this guest (printed, not gating)", () => {
    const selftest = report<SelftestReport>("selftest");
    console.log(
      `iommufd selftest: ${selftest.totals || "(no totals line)"} in ${(selftest.ended - selftest.started).toFixed(1)} s` +
        (selftest.failed ? `; not ok: ${selftest.failed}` : ""),
    );
  });

  it("the SMMU contract suite runs on the native backend over the real kernel (every scenario completes)", () => {
    const contracts = boot.reports
      .filter((r) => r.kind === "contract")
      .map((r) => r.payload as ContractReport);
    assert.deepEqual(
      contracts.map((c) => c.name),
      CONTRACT_SCENARIOS.map((s) => s.name),
    );
    for (const c of contracts) assert.equal(c.error, undefined, `${c.name}: ${c.error}`);
  });

  // The differential: the emulated backend, given the features the kernel's HW_INFO reported,
  // answers each scenario as the kernel did, except where a listed difference explains why not.
  it("the emulated backend answers every contract scenario as the real kernel does", async () => {
    const { features } = report<{ features: Partial<SmmuFeatures> }>("features");
    const contracts = boot.reports
      .filter((r) => r.kind === "contract")
      .map((r) => r.payload as ContractReport);
    const kernel = Object.fromEntries(contracts.map((c) => [c.name, c.result ?? { error: c.error }]));
    if (process.env.VPLANE_RECORD_FIXTURES === "1") {
      writeContractFixture({ kernel: report<EnvReport>("env").kernel, features, scenarios: kernel });
    }
    const differences = await compareWithEmulated(features, kernel);
    for (const d of differences) console.log(`difference: ${d}`);
    assert.deepEqual(differences, []);
  });

  // The iommu service's own handlers on the same kernel (service-scenarios.ts): what a VMM and an
  // orchestrator observe of NATIVE SMMUs made by CreateSmmu and ImportDeviceState.
  describe("the iommu service on the real kernel", () => {
    const failedPrecondition = (
      reason: string,
      field: string | null = null,
      errno: number | null = null,
    ) => ({
      code: "FAILED_PRECONDITION",
      reason,
      errno,
      field,
    });
    const service = () => {
      const s = report<Record<string, unknown>>("service");
      assert.equal(s.error, undefined, String(s.error));
      return s as Record<string, Record<string, unknown>>;
    };

    it("standalone (no handoff socket): the service opens /dev/iommu and edu's cdev itself; a device bound to one SMMU's iommufd cannot bind to a second (EINVAL, vfio_df_open); a deleted SMMU gives the device back; no RAM file is refused", () => {
      const { standalone } = service();
      console.log(`service standalone: ${JSON.stringify(standalone)}`);
      assert.equal(standalone!.backend, "BACKEND_NATIVE");
      assert.deepEqual(
        standalone!.secondWhileDeviceBound,
        failedPrecondition("DEVICE_BIND_FAILED", "smmu.backend", 22),
      );
      assert.equal(standalone!.afterDelete, "ok");
      assert.deepEqual(
        standalone!.noRam,
        failedPrecondition("NATIVE_NEEDS_GUEST_RAM_FILE", "smmu.guest_memory.path"),
      );
      assert.equal(standalone!.left, 0);
    });

    it("handoff: without a VMM's fds CreateSmmu NATIVE is VMM_HANDOFF_MISSING; on them the VMM's own DMA goes through stage 2; once the VMM leaves, kernel calls are VMM_GONE while Get and Delete work", () => {
      const { handoff } = service();
      console.log(`service handoff: ${JSON.stringify(handoff)}`);
      assert.deepEqual(handoff!.withoutHandoff, failedPrecondition("VMM_HANDOFF_MISSING", "smmu.backend"));
      assert.deepEqual(handoff!.handoffAnswer, { type: "adopted", version: 1, vm: "web", smmu: "s0" });
      assert.equal(handoff!.backend, "BACKEND_NATIVE");
      assert.equal(handoff!.dma, DMA_PATTERN);
      const gone = handoff!.afterGone as Record<string, unknown>;
      for (const call of ["mapStage2", "detachDevice", "quiesce"])
        assert.deepEqual([call, (gone[call] as { reason?: string }).reason], [call, "VMM_GONE"]);
      assert.deepEqual([gone.getSmmu, gone.deleteSmmu, handoff!.left], ["ok", "ok", 0]);
    });

    it("migration native → emulated → native through the DeviceStateService (ImportDeviceStateRequest.backend): the guest's DMA through both stages works on each side, the source's VMM is told its fds were released", () => {
      const { migration } = service();
      console.log(`service migration: ${JSON.stringify(migration)}`);
      const m = migration as Record<string, Record<string, unknown>>;
      assert.equal(migration!.nativeDma, DMA_PATTERN);
      assert.deepEqual(m.toEmulated!.devices, ["vms/mig/smmus/s0"]);
      assert.equal(m.toEmulated!.backend, "BACKEND_EMULATED");
      assert.deepEqual(m.toEmulated!.translated, {
        outcome: TranslationOutcome.TRANSLATION_OUTCOME_TRANSLATED,
        address: 0x10_1000,
      });
      const [released, closed] = m.toEmulated!.sourceReleased as [{ type: string }, string];
      assert.deepEqual([released.type, closed], ["released", "closed"]);
      assert.deepEqual(m.toNative, {
        devices: ["vms/mig/smmus/s0"],
        backend: "BACKEND_NATIVE",
        dma: DMA_PATTERN,
      });
    });

    it("a state the host's SMMU cannot take (an MSI doorbell bound: iommufd maps the host's own) is refused whole: INVALID_ARGUMENT naming the section's field, nothing made, the VMM's fds released", () => {
      const refused = (service().migration as Record<string, Record<string, unknown>>).refused!;
      assert.deepEqual(refused.outcome, {
        code: "INVALID_ARGUMENT",
        reason: "MSI_DOORBELL_KERNEL_MANAGED",
        errno: null,
        field: "sections[0].payload.msi",
      });
      assert.deepEqual([refused.vmmTold, refused.left], ["released", 0]);
    });
  });
});
