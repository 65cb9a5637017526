// The native probe tells the truth (issue 13 point 4): each step that can fail is named, in
// order; the kernel's own answers (HW_INFO, NEST_PARENT, vIOMMU) come from a bound device, and
// on the Arm kernel tier the real kernel answers (kernel-tier/arm64).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno, KernelError, type KernelCallsAvailability } from "@vplane/host-kernel";
import { probeNativeSmmu, thisHost, type NativeSmmuHost } from "../src/native-probe.js";
import { NativeSetupError } from "../src/native-smmu-objects.js";

function fakeHost(
  overrides: Partial<NativeSmmuHost> = {},
): NativeSmmuHost & { closed: number[]; released: number } {
  const host = {
    arch: "arm64",
    kernelCalls: (): KernelCallsAvailability => ({ available: true, arch: "arm64" }),
    openIommufd: () => 3,
    vfioDevices: () => ["/dev/vfio/devices/vfio0"],
    openDevice: () => 4,
    setUp: () => ({ close: () => void host.released++ }),
    close: (fd: number) => void host.closed.push(fd),
    closed: [] as number[],
    released: 0,
    ...overrides,
  };
  return host;
}

const failingStep = (step: string, errno: number) => () => {
  throw new NativeSetupError(step, new KernelError(step, errno));
};

describe("probeNativeSmmu names the step that failed", () => {
  it("a host that is not arm64: HOST_NOT_ARM", () => {
    assert.equal(probeNativeSmmu(fakeHost({ arch: "x64" })).unavailableCode, "HOST_NOT_ARM");
  });

  it("the kernel-call library does not load: KERNEL_CALLS_UNAVAILABLE with its reason", () => {
    const probe = probeNativeSmmu(
      fakeHost({ kernelCalls: () => ({ available: false, reason: "no koffi binary" }) }),
    );
    assert.deepEqual(
      [probe.unavailableCode, probe.unavailableReason],
      ["KERNEL_CALLS_UNAVAILABLE", "no koffi binary"],
    );
  });

  it("/dev/iommu missing: IOMMUFD_NOT_PRESENT; present but refused: IOMMUFD_OPEN_FAILED with the errno", () => {
    const missing = probeNativeSmmu(
      fakeHost({
        openIommufd: () => {
          throw new KernelError("open /dev/iommu", Errno.ENOENT);
        },
      }),
    );
    assert.equal(missing.unavailableCode, "IOMMUFD_NOT_PRESENT");
    const refused = probeNativeSmmu(
      fakeHost({
        openIommufd: () => {
          throw new KernelError("open /dev/iommu", Errno.EACCES);
        },
      }),
    );
    assert.equal(refused.unavailableCode, "IOMMUFD_OPEN_FAILED");
    assert.match(refused.unavailableReason, /EACCES/);
  });

  it("no VFIO device to ask about, or none that opens: NO_VFIO_DEVICE, and /dev/iommu is closed", () => {
    const none = fakeHost({ vfioDevices: () => [] });
    assert.equal(probeNativeSmmu(none).unavailableCode, "NO_VFIO_DEVICE");
    assert.deepEqual(none.closed, [3]);
    const busy = probeNativeSmmu(
      fakeHost({
        openDevice: () => {
          throw new KernelError("open vfio0", Errno.EBUSY);
        },
      }),
    );
    assert.equal(busy.unavailableCode, "NO_VFIO_DEVICE");
    assert.match(busy.unavailableReason, /EBUSY/);
  });

  it("the kernel's answers for the device: bind, HW_INFO not SMMUv3, NEST_PARENT, vIOMMU refused (EOPNOTSUPP)", () => {
    const cases: [string, string][] = [
      ["VFIO_DEVICE_BIND_IOMMUFD (StreamID 0)", "DEVICE_BIND_FAILED"],
      ["IOMMU_GET_HW_INFO", "NOT_SMMUV3"],
      ["IOMMU_HWPT_ALLOC (NEST_PARENT)", "NESTING_UNSUPPORTED"],
      ["IOMMU_VIOMMU_ALLOC (ARM_SMMUV3)", "NESTING_REFUSED"],
    ];
    for (const [step, code] of cases) {
      const host = fakeHost({ setUp: failingStep(step, Errno.EOPNOTSUPP) });
      const probe = probeNativeSmmu(host);
      assert.equal(probe.unavailableCode, code, step);
      assert.match(probe.unavailableReason, /EOPNOTSUPP/);
      assert.deepEqual(host.closed, [4, 3], "the device and /dev/iommu are closed again");
    }
  });

  it("everything answers: available, and what the probe made is destroyed", () => {
    const host = fakeHost();
    assert.equal(probeNativeSmmu(host).available, true);
    assert.equal(host.released, 1);
  });

  it("this host's answer is its own (HOST_NOT_ARM on the x86 machines CI runs on)", () => {
    const probe = probeNativeSmmu(thisHost);
    if (process.arch !== "arm64") assert.equal(probe.unavailableCode, "HOST_NOT_ARM");
  });
});
