import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Errno } from "@vplane/model-kit";
import { KVM_XIVE_NR_IRQS } from "../src/kvm-attributes.js";
import { QADDR, eq, makeDevice, routedDevice, sourceConfig, thrown } from "./fixtures.js";

describe("device controls (xive.md §1.1, §1.2, §1.6)", () => {
  it("§1.2 NR_SERVERS: 0 or > KVM_MAX_VCPU_IDS → EINVAL; > KVM_MAX_VCPUS clamped; EBUSY once a vCPU connected", () => {
    const { device } = makeDevice();
    assert.equal(device.nrServers, 2048, "default KVM_MAX_VCPUS");
    assert.equal(thrown(() => device.setNrServers(0)).errno, Errno.EINVAL);
    assert.equal(thrown(() => device.setNrServers(16385)).errno, Errno.EINVAL);
    device.setNrServers(16384);
    assert.equal(device.nrServers, 2048);
    device.setNrServers(4);
    device.connectVcpu(0);
    assert.equal(thrown(() => device.setNrServers(8)).errno, Errno.EBUSY);
    assert.equal(device.nrServers, 4);
  });

  it("§1.1 connect: EBUSY vCPU already connected, EINVAL server ≥ nr_servers, EEXIST server taken", () => {
    const { device } = makeDevice();
    device.setNrServers(2);
    device.connectVcpu(0, 0);
    assert.equal(thrown(() => device.connectVcpu(0, 1)).errno, Errno.EBUSY);
    assert.equal(thrown(() => device.connectVcpu(1, 2)).errno, Errno.EINVAL);
    assert.equal(thrown(() => device.connectVcpu(1, 0)).errno, Errno.EEXIST);
    device.connectVcpu(1, 1);
    assert.deepEqual(device.connectedServers(), [0, 1]);
  });

  it("§1.2 SOURCE: irq ≥ 1,048,576 → E2BIG; the last KVM source is cheap (blocks are sparse)", () => {
    const { device } = makeDevice();
    assert.equal(thrown(() => device.initSource(KVM_XIVE_NR_IRQS)).errno, Errno.E2BIG);
    device.initSource(KVM_XIVE_NR_IRQS - 1);
    assert.equal(device.sources.blocks.filter((b) => b !== undefined).length, 1);
    assert.equal(device.sources.validSources, 1);
  });

  it("§1.2 SOURCE_SYNC: ENOENT without a block, EINVAL when not valid", () => {
    const { device } = makeDevice();
    assert.equal(thrown(() => device.syncSource(10)).errno, Errno.ENOENT);
    device.initSource(11);
    assert.equal(thrown(() => device.syncSource(10)).errno, Errno.EINVAL);
    device.syncSource(11);
  });

  it("§1.2 RESET: valid unmasked sources → eisn 0, PQ 01, MASKED; queues torn down; masked sources keep PQ", () => {
    const { device } = routedDevice(0x1300, 0x42);
    device.initSource(0x1301);
    device.esbLoad(0x1301, true, 0xe00); // masked source with PQ 10
    device.trigger(0x1300);
    device.reset();
    const s = device.source(0x1300)!;
    assert.deepEqual([s.pq, s.masked, s.eisn], [0b01, true, 0]);
    assert.equal(device.source(0x1301)!.pq, 0b10);
    assert.equal(device.getQueueConfig(0, 6), undefined);
  });

  it("§1.2 EQ_SYNC marks every configured queue's pages dirty", () => {
    const { device, memory } = routedDevice();
    device.connectVcpu(1);
    device.setQueueConfig(1, 3, eq(BigInt(QADDR + 0x20000)));
    memory.takeDirtyPages();
    const marked = device.eqSync();
    const pages = memory.takeDirtyPages();
    assert.deepEqual(marked, pages);
    assert.equal(pages.length, 32, "two 64 KiB queues in 4 KiB pages");
    assert.equal(pages[0], QADDR / 4096);
    assert.equal(pages[16], (QADDR + 0x20000) / 4096);
  });

  it("§1.6 VP_STATE: [0] is OS word0/1 big-endian (NSR,CPPR,IPB,LSMFB,ACK#,INC,AGE,PIPR); set stores it; ENOENT without vCPU", () => {
    const { device, signals } = routedDevice();
    device.trigger(0x1300);
    assert.equal(device.getVpState(0)[0], 0x80ff_0200_ff00_0006n);
    assert.deepEqual(device.getVpState(0)[1], 0n);
    device.setVpState(0, [0x00ff_0000_ff00_00ffn, 0n]);
    assert.equal(device.context(0)!.regs[0x12], 0);
    assert.deepEqual(signals.at(-1), { server: 0, raised: false }, "NSR restored clear: line low");
    assert.equal(thrown(() => device.getVpState(5)).errno, Errno.ENOENT);
    assert.equal(thrown(() => device.setVpState(5, [0n, 0n])).errno, Errno.ENOENT);
  });

  it("§1.6 VP_STATE set dispatches the context: PIPR (never saved) is recomputed from IPB and the exception presented if it beats CPPR", () => {
    const { device, signals } = routedDevice();
    // The kernel's VP_STATE of a vCPU that has not run: IPB 02 from the NVT, PIPR stale (0xFF).
    device.setVpState(0, [0x00ff_0200_0000_00ffn, 0n]);
    assert.equal(device.getVpState(0)[0], 0x80ff_0200_0000_0006n, "PIPR 6 < CPPR 0xFF: NSR 0x80");
    assert.deepEqual(signals.at(-1), { server: 0, raised: true });
    assert.equal(device.timaLoad(0, 0x2_0810, 2), 0x8006n, "the guest's ACK takes priority 6");
    device.setVpState(0, [0x0000_0200_ff00_0000n, 0n]);
    assert.equal(device.getVpState(0)[0], 0x0000_0200_ff00_0006n, "CPPR 0: pending, not presented");
  });

  it("§1.4 single escalation: a vCPU's first queue with a page takes its one escalation interrupt; another priority is EBUSY until RESET", () => {
    const { device } = routedDevice();
    device.connectVcpu(1);
    const busy = thrown(() => device.setQueueConfig(0, 5, eq(0x20_0000n)));
    assert.deepEqual([busy.errno, busy.reason], [Errno.EBUSY, "SINGLE_ESCALATION_IN_USE"]);
    assert.equal(device.getQueueConfig(0, 5), undefined, "nothing configured");
    assert.equal(
      thrown(() => device.setQueueConfig(0, 5, eq(0x20_0000n, { qshift: 12 }))).errno,
      Errno.EINVAL,
      "the other checks first",
    );
    device.setQueueConfig(0, 6, eq(0x30_0000n));
    device.setQueueConfig(1, 5, eq(0x20_0000n));
    device.setQueueConfig(0, 6, eq(0n, { qshift: 0 }));
    assert.equal(
      thrown(() => device.setQueueConfig(0, 5, eq(0x20_0000n))).errno,
      Errno.EBUSY,
      "a disabled queue keeps the escalation",
    );
    device.reset();
    device.setQueueConfig(0, 5, eq(0x20_0000n));
    assert.equal(device.getQueueConfig(0, 5)?.qaddr, 0x20_0000n);
  });

  it("§1.3 masked source config clears the target; a source config on a vCPU in another block works", () => {
    const { device } = routedDevice();
    device.initSource(0x40000);
    device.setSourceConfig(0x40000, sourceConfig(0, 6, 9));
    device.esbLoad(0x40000, true, 0xc00);
    device.trigger(0x40000);
    assert.equal(device.router.counters.delivered, 1);
  });
});
