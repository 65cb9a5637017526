import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type KoffiModule from "koffi";
import { KvmCap, closeFd, hostArchitecture, ioctl, kvmIoctls, openDevice } from "@vplane/host-kernel";
import type { BenchRow } from "./result-table.js";

const CALLS_PER_ROUND = 200_000;
const ROUNDS = 7;

/** Best-of-rounds calls per second of `call`, run synchronously (an ioctl is a blocking syscall). */
function callsPerSecond(call: () => unknown, round: number, results: number[]): void {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS_PER_ROUND; i++) call();
  results[round] = CALLS_PER_ROUND / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/**
 * The kernel-call library's cost per ioctl (issue 12): KVM_CHECK_EXTENSION(KVM_CAP_PPC_IRQ_XIVE)
 * on /dev/kvm through libs/host-kernel's ioctl (request lookup, error check, typed errors)
 * against the same call through a bare koffi binding of ioctl(2), in alternating rounds of the
 * same run; each side's best round counts. Target: the library at ≥ 0.8 of bare koffi.
 */
export function hostKernelIoctlBench(): Promise<BenchRow[]> {
  const arch = hostArchitecture();
  if (!existsSync("/dev/kvm") || arch === undefined) {
    console.error("host-kernel-ioctl: no /dev/kvm here, skipped");
    return Promise.resolve([]);
  }
  const koffi = createRequire(import.meta.url)("koffi") as typeof KoffiModule;
  const bareIoctl = koffi
    .load("libc.so.6")
    .func("int ioctl(int fd, unsigned long request, unsigned long arg)") as (
    fd: number,
    request: number,
    arg: number,
  ) => number;
  const request = kvmIoctls(arch).KVM_CHECK_EXTENSION;
  const cap = KvmCap.KVM_CAP_PPC_IRQ_XIVE;
  const kvm = openDevice("/dev/kvm");
  try {
    const bare: number[] = [];
    const library: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      callsPerSecond(() => bareIoctl(kvm, request.number, cap), round, bare);
      callsPerSecond(() => ioctl(kvm, request, cap), round, library);
    }
    const baseline = Math.max(...bare);
    const measured = Math.max(...library);
    const benchmark = "ioctl KVM_CHECK_EXTENSION(169) on /dev/kvm";
    return Promise.resolve([
      { benchmark, variant: "bare koffi ioctl (baseline)", opsPerSec: baseline },
      {
        benchmark,
        variant: "libs/host-kernel ioctl",
        opsPerSec: measured,
        ratio: measured / baseline,
        target: ">= 0.8 of bare koffi",
        met: measured / baseline >= 0.8,
      },
    ]);
  } finally {
    closeFd(kvm);
  }
}
