// The native probe tells the truth: each step that can fail is named, in order, and the real
// host's answer is the one its kernel gives.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { Errno, KernelError, hostArchitecture, type KernelCallsAvailability } from "@vplane/host-kernel";
import { probeNativeXive, type NativeXiveHost } from "../src/native-probe.js";

const KVM_FD = 42;

function fakeHost(
  overrides: Partial<NativeXiveHost> & { closed?: number[] } = {},
): NativeXiveHost & { closed: number[] } {
  const closed: number[] = [];
  return {
    kernelCalls: (): KernelCallsAvailability => ({ available: true, arch: "ppc64le" }),
    openKvm: () => KVM_FD,
    checkXiveExtension: () => 1,
    close: (fd) => closed.push(fd),
    ...overrides,
    closed,
  };
}

describe("probeNativeXive names the step that failed", () => {
  it("the kernel-call library does not load: KERNEL_CALLS_UNAVAILABLE with the loader's reason", () => {
    const probe = probeNativeXive(
      fakeHost({ kernelCalls: () => ({ available: false, reason: "koffi has no binary for linux-s390x" }) }),
    );
    assert.deepEqual([probe.available, probe.unavailableCode], [false, "KERNEL_CALLS_UNAVAILABLE"]);
    assert.match(probe.unavailableReason, /koffi has no binary/);
  });

  it("/dev/kvm does not exist: KVM_NOT_PRESENT", () => {
    const probe = probeNativeXive(
      fakeHost({
        openKvm: () => {
          throw new KernelError("open /dev/kvm", Errno.ENOENT);
        },
      }),
    );
    assert.equal(probe.unavailableCode, "KVM_NOT_PRESENT");
  });

  it("/dev/kvm exists but does not open: KVM_OPEN_FAILED naming the errno", () => {
    const probe = probeNativeXive(
      fakeHost({
        openKvm: () => {
          throw new KernelError("open /dev/kvm", Errno.EACCES);
        },
      }),
    );
    assert.equal(probe.unavailableCode, "KVM_OPEN_FAILED");
    assert.match(probe.unavailableReason, /EACCES/);
  });

  it("KVM_CHECK_EXTENSION(169) answers 0: XIVE_CAPABILITY_ABSENT, and /dev/kvm is closed again", () => {
    const host = fakeHost({ checkXiveExtension: () => 0 });
    const probe = probeNativeXive(host);
    assert.equal(probe.unavailableCode, "XIVE_CAPABILITY_ABSENT");
    assert.match(probe.unavailableReason, /KVM_CAP_PPC_IRQ_XIVE = 169\) is 0/);
    assert.deepEqual(host.closed, [KVM_FD]);
  });

  it("KVM_CHECK_EXTENSION(169) answers > 0 (a POWER9 host with KVM-HV): available", () => {
    const host = fakeHost();
    const probe = probeNativeXive(host);
    assert.deepEqual([probe.available, probe.unavailableCode], [true, ""]);
    assert.deepEqual(host.closed, [KVM_FD]);
  });
});

describe("probeNativeXive on this host", () => {
  it("answers what this kernel answers: unavailable off POWER, XIVE_CAPABILITY_ABSENT where /dev/kvm opens", () => {
    const probe = probeNativeXive();
    if (hostArchitecture() === "ppc64le") return; // the kernel tier checks a POWER9 guest
    assert.equal(probe.available, false);
    if (existsSync("/dev/kvm")) assert.equal(probe.unavailableCode, "XIVE_CAPABILITY_ABSENT");
    else assert.equal(probe.unavailableCode, "KVM_NOT_PRESENT");
  });
});
