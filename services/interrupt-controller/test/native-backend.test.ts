// The native backend on this host's real kernel: where the KVM XIVE device does not exist
// (x86_64), creating it is the honest error path, and nothing is left half-made.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { hostArchitecture, type KernelCallsAvailability } from "@vplane/host-kernel";
import { XiveError } from "@vplane/xive";
import { NativeBackend } from "../src/native-backend.js";
import { probeNativeXive, thisHost, type NativeXiveHost } from "../src/native-probe.js";

// A machine without hardware virtualisation has no /dev/kvm, and nothing .ci/run installs can
// give it one, so CI skips there too (loudly); the POWER9 kernel tier runs the native backend on a
// real kernel's KVM XIVE device either way.
function kvmSkipReason(): string | false {
  if (existsSync("/dev/kvm") && hostArchitecture() === "x86_64") return false;
  const reason = existsSync("/dev/kvm")
    ? `a ${hostArchitecture()} host, not x86_64`
    : "no /dev/kvm (this machine has no hardware virtualisation)";
  const line = `${reason}: SKIPPING the native backend's KVM_CREATE_DEVICE error path on this host's kernel`;
  process.stderr.write(`\n*** ${line} ***\n\n`);
  return line;
}

/** This host, except that its probe says yes: the device creation itself must then fail. */
const probeSaysYes: NativeXiveHost = {
  ...thisHost,
  kernelCalls: (): KernelCallsAvailability => ({ available: true, arch: "x86_64" }),
  checkXiveExtension: () => 1,
};

const openFds = () => readdirSync("/proc/self/fd").length;

describe("NativeBackend on an x86_64 KVM host", { skip: kvmSkipReason() }, () => {
  it("KVM_CREATE_DEVICE(KVM_DEV_TYPE_XIVE) fails ENODEV: FAILED_PRECONDITION KERNEL_ENODEV with errno 19, no fd or mapping left", () => {
    const dir = mkdtempSync(join(tmpdir(), "native-backend-"));
    const ram = { path: join(dir, "guest.ram"), bytes: 1 << 20 };
    writeFileSync(ram.path, new Uint8Array(ram.bytes));
    try {
      const before = openFds();
      assert.throws(
        () =>
          NativeBackend.create({ mode: "XIVE", nrServers: 4, nrIrqs: 4096 }, ram, undefined, probeSaysYes),
        (e: unknown) =>
          e instanceof XiveError &&
          e.code === "FAILED_PRECONDITION" &&
          e.reason === "KERNEL_ENODEV" &&
          e.errno === 19,
      );
      assert.equal(openFds(), before, "the VM fd and the RAM file are closed again");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Off POWER the probe says no (XIVE_CAPABILITY_ABSENT where /dev/kvm opens, KVM_NOT_PRESENT where
// there is none), so these run on every host.
describe("NativeBackend refuses before any kernel call", () => {
  it("where the probe says no, creation is refused before any kernel call, with the probe's reason", () => {
    assert.throws(
      () =>
        NativeBackend.create(
          { mode: "XIVE", nrServers: 4, nrIrqs: 4096 },
          { path: "/nonexistent", bytes: 1 << 20 },
        ),
      (e: unknown) =>
        e instanceof XiveError &&
        e.code === "FAILED_PRECONDITION" &&
        e.reason === probeNativeXive().unavailableCode,
    );
  });

  it("a mode other than XIVE is refused: the native backend is the KVM XIVE device", () => {
    assert.throws(
      () =>
        NativeBackend.create(
          { mode: "XICS", nrServers: 4, nrIrqs: 4096 },
          { path: "/nonexistent", bytes: 1 << 20 },
        ),
      (e: unknown) => e instanceof XiveError && e.reason === "MODE_UNAVAILABLE",
    );
  });
});
