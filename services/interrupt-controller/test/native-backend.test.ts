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
import { thisHost, type NativeXiveHost } from "../src/native-probe.js";

function kvmSkipReason(): string | false {
  if (existsSync("/dev/kvm") && hostArchitecture() === "x86_64") return false;
  const reason =
    "no /dev/kvm on an x86_64 host here: SKIPPING the native backend's KVM_CREATE_DEVICE error path";
  if (process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  process.stderr.write(`\n*** ${reason} ***\n\n`);
  return reason;
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

  it("where the probe says no, creation is refused before any kernel call, with the probe's reason", () => {
    assert.throws(
      () =>
        NativeBackend.create(
          { mode: "XIVE", nrServers: 4, nrIrqs: 4096 },
          { path: "/nonexistent", bytes: 1 << 20 },
        ),
      (e: unknown) =>
        e instanceof XiveError && e.code === "FAILED_PRECONDITION" && e.reason === "XIVE_CAPABILITY_ABSENT",
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
