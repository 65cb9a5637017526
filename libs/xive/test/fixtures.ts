import { SparseGuestMemory } from "@vplane/guest-memory";
import { encodeKvmSourceConfig, type KvmXiveEq } from "../src/kvm-attributes.js";
import { XiveDevice, type XiveDeviceOptions } from "../src/xive-device.js";

/** Guest RAM for tests: 256 MiB, sparse. */
export const RAM_SIZE = 256 * 1024 * 1024;
export const QADDR = 0x10_0000;

export interface Signal {
  server: number;
  raised: boolean;
}

/** A XIVE device with its signal log. */
export function makeDevice(options: XiveDeviceOptions = {}): {
  device: XiveDevice;
  signals: Signal[];
  memory: SparseGuestMemory;
} {
  const memory = new SparseGuestMemory(RAM_SIZE);
  const signals: Signal[] = [];
  const device = new XiveDevice(memory, {
    onSignal: (server, raised) => signals.push({ server, raised }),
    ...options,
  });
  return { device, signals, memory };
}

export function eq(qaddr: bigint, fields: Partial<KvmXiveEq> = {}): KvmXiveEq {
  return { flags: 1, qshift: 16, qaddr, qtoggle: 1, qindex: 0, ...fields };
}

export function sourceConfig(server: number, priority: number, eisn: number, masked = false): bigint {
  return encodeKvmSourceConfig({ server, priority, eisn, masked });
}

/**
 * vCPU 0 connected, a 64 KiB priority-6 queue at QADDR, CPPR 0xFF, and MSI `irq` routed to
 * (0, 6) with EISN `eisn` and PQ 00 (the guest's SET_PQ_00 unmask).
 */
export function routedDevice(irq = 0x1300, eisn = 0x1300, options: XiveDeviceOptions = {}) {
  const made = makeDevice(options);
  const { device } = made;
  device.connectVcpu(0);
  device.setQueueConfig(0, 6, eq(BigInt(QADDR)));
  device.initSource(irq);
  device.setSourceConfig(irq, sourceConfig(0, 6, eisn));
  device.esbLoad(irq, true, 0xc00);
  device.timaStore(0, 0x2_0011, 1, 0xffn);
  return made;
}

/** Runs `fn` and returns the XiveError it throws (or fails). */
export function thrown(fn: () => unknown): { code: string; reason: string; errno?: number } {
  try {
    fn();
  } catch (error) {
    return error as { code: string; reason: string; errno?: number };
  }
  throw new Error("expected an error");
}
