// The POWER9 kernel tier: a real ppc64le 6.1 kernel's KVM XIVE device under QEMU powernv9, driven
// by the project's code in the guest's Node 20.11 through koffi.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, describe, it } from "node:test";
import { SparseGuestMemory } from "@vplane/guest-memory";
import { bootGuest, tierSkipReason, type BootResult } from "@vplane/kernel-tier-runner";
import { XiveDevice } from "@vplane/xive";
import { unexplainedDifferences } from "../src/contract/compare-observations.js";
import { readContractFixture, writeContractFixture } from "../src/contract/contract-fixture.js";
import type { ContractObservation } from "../src/contract/xive-contract.js";
import { findPower9Artefacts } from "../src/power9-artefacts.js";
import { buildPower9Initramfs, power9QemuArguments } from "../src/power9-machine.js";

const lookup = findPower9Artefacts();
const skip = tierSkipReason("POWER9 kernel tier", lookup);

interface Observation {
  name: string;
  ok: boolean;
  value?: unknown;
  errnoName?: string;
  error?: string;
}

describe("POWER9 kernel tier: the KVM XIVE device of a real 6.1 kernel under QEMU powernv9", { skip }, () => {
  let boot: BootResult;
  let initrd: string | undefined;

  before(async () => {
    if (!lookup.found) throw new Error(lookup.reason);
    const t0 = Date.now();
    initrd = await buildPower9Initramfs(lookup.artefacts);
    const assembled = Date.now() - t0;
    boot = await bootGuest({
      qemu: lookup.artefacts.qemu,
      args: power9QemuArguments(lookup.artefacts, initrd),
      // 1.5-3.5 min on a loaded 2-core machine: the service's start alone is about a minute of
      // the emulated CPU (the gRPC reflection index of the whole API).
      timeoutMs: Number(process.env.VPLANE_TIER_TIMEOUT_MS ?? 480_000),
    });
    console.log(
      `power9 tier: initramfs ${assembled} ms, boot + guest run ${boot.durationMs} ms, total ${Date.now() - t0} ms`,
    );
    if (boot.failure || boot.endStatus !== 0 || process.env.VPLANE_TIER_CONSOLE)
      console.log(boot.console.slice(-80).join("\n"));
  });

  after(() => {
    if (initrd) rmSync(dirname(initrd), { recursive: true, force: true });
  });

  const reports = (kind: string) => boot.reports.filter((r) => r.kind === kind).map((r) => r.payload);
  const observation = (name: string): Observation => {
    const found = (reports("observation") as Observation[]).find((o) => o.name === name);
    assert.ok(
      found,
      `the guest reported no observation "${name}" (${boot.failure ?? `ended ${boot.endStatus}`})`,
    );
    return found;
  };

  it("the guest boots, loads kvm and kvm-hv, runs Node 20 with koffi's ppc64 binary and ends with status 0", () => {
    assert.equal(boot.failure, undefined);
    assert.deepEqual(
      reports("modules").map((m) => (m as { status: number }).status),
      [0],
    );
    const [env] = reports("env") as { node: string; arch: string; kernelCalls: { available: boolean } }[];
    assert.match(env!.node, /^v20\./);
    assert.equal(env!.arch, "ppc64");
    assert.equal(env!.kernelCalls.available, true);
    assert.equal(boot.endStatus, 0);
  });

  it("the probe says available on POWER9 with KVM-HV: KVM_CHECK_EXTENSION(169) > 0", () => {
    assert.deepEqual(reports("probe"), [
      { backend: 2, available: true, unavailableCode: "", unavailableReason: "" },
    ]);
  });

  it("the device's first answers: EEXIST for a second device, ENOENT for an irq in no block, ENXIO for an unknown group", () => {
    assert.equal(observation("second device").errnoName, "EEXIST");
    assert.equal(observation("NR_SERVERS 4").ok, true);
    assert.equal(observation("SOURCE 16").ok, true);
    assert.equal(observation("SOURCE_CONFIG of an irq in no block").errnoName, "ENOENT");
    assert.equal(observation("unknown group").errnoName, "ENXIO");
  });

  it("ESB loads on the mapped management page: SOURCE leaves PQ=01, SET_PQ_00 returns the old PQ and leaves 00", () => {
    assert.equal(observation("ESB GET after SOURCE").value, "1");
    assert.equal(observation("ESB SET_PQ_00").value, "1");
    assert.equal(observation("ESB GET after SET_PQ_00").value, "0");
  });

  const contractRun = (run: string): ContractObservation[] => {
    assert.deepEqual(reports("contract-failed"), [], "a contract run failed in the guest");
    return (reports("contract") as { run: string; index: number; observation: ContractObservation }[])
      .filter((r) => r.run === run)
      .sort((a, b) => a.index - b.index)
      .map((r) => r.observation);
  };

  it("the contract runs both ways in the guest: native → emulated and emulated → native, every step equal but the known differences", () => {
    const nativeFirst = contractRun("native-to-emulated");
    const emulatedFirst = contractRun("emulated-to-native");
    assert.ok(nativeFirst.length > 60 && nativeFirst.length === emulatedFirst.length);
    // Each run's origin is the other's target kind: comparing them holds every step of one
    // backend to the other's answer for the same step.
    assert.deepEqual(unexplainedDifferences(emulatedFirst, nativeFirst), []);
  });

  it("SetLsiLevel on a source never initialised: native refuses it as KVM's kvm_set_irq (INVALID_ARGUMENT, EINVAL), emulated takes it as QEMU's void xive_source_set_irq", () => {
    const step = "SetLsiLevel 19 (not initialised)";
    // The step runs after the move: each run's target answers it.
    const answer = (run: string) => contractRun(run).find((o) => o.step === step && o.on === "target");
    assert.deepEqual(answer("emulated-to-native")?.error, {
      code: "INVALID_ARGUMENT",
      reason: "SOURCE_NOT_VALID",
      errno: 22,
    });
    assert.deepEqual(answer("native-to-emulated"), { step, on: "target", value: null });
  });

  it("the recorded fixtures are this kernel's answers (VPLANE_RECORD_FIXTURES=1 records them)", async () => {
    const runs = {
      "native-to-emulated": contractRun("native-to-emulated"),
      "emulated-to-native": contractRun("emulated-to-native"),
    };
    if (process.env.VPLANE_RECORD_FIXTURES === "1") {
      const [env] = reports("env") as { node: string }[];
      await writeContractFixture({
        recordedWith: {
          kernel: lookup.found ? lookup.artefacts.kernel.replace(/^.*\//, "") : "",
          machine: "QEMU powernv9 (TCG) with skiboot",
          node: `${env!.node} ppc64le`,
        },
        runs,
      });
    }
    const fixture = readContractFixture();
    for (const [run, observations] of Object.entries(runs))
      assert.deepEqual(
        observations,
        fixture.runs[run],
        `${run} differs from the fixture: re-record with VPLANE_RECORD_FIXTURES=1 and review the diff`,
      );
  });

  it("a second queue priority on one vCPU: the kernel answers EBUSY (single escalation) and the model the same errno; the first queue stays", () => {
    const refused = observation("second queue: EQ_CONFIG 0/5 (a second priority of vCPU 0)");
    assert.equal(refused.errnoName, "EBUSY");
    assert.equal(
      (observation("second queue: EQ_CONFIG get 0/5 after the refusal").value as { qshift: number }).qshift,
      0,
    );
    assert.equal(
      (observation("second queue: EQ_CONFIG get 0/6 after the refusal").value as { qshift: number }).qshift,
      16,
    );
    // The same calls on the model (kernel errnos are the same numbers on every Linux architecture here).
    const model = new XiveDevice(new SparseGuestMemory(1 << 20), { nrIrqs: 4096 });
    model.setNrServers(1);
    model.connectVcpu(0, 0);
    const queue = (qaddr: bigint) => ({ flags: 1, qshift: 16, qaddr, qtoggle: 1, qindex: 0 });
    model.setQueueConfig(0, 6, queue(0x10000n));
    assert.throws(() => model.setQueueConfig(0, 5, queue(0x20000n)), {
      errno: 16,
      reason: "SINGLE_ESCALATION_IN_USE",
    });
  });

  it("adopt: a VMM hands its VM over the socket, the native backend works on it, the device fd goes back and the VMM maps the ESB pages; the VMM leaves: VMM_GONE", () => {
    assert.deepEqual(reports("adopt-failed"), []);
    assert.deepEqual(observation("adopt: the service's answer").value, {
      type: "adopted",
      version: 1,
      vm: "adopted",
    });
    assert.equal(observation("adopt: connect vCPU 0 (the VMM's vCPU fd)").ok, true);
    assert.equal(observation("adopt: SOURCE 16").ok, true);
    assert.deepEqual(observation("adopt: device message").value, {
      type: "device",
      vm: "adopted",
      controller: "vms/adopted/controller",
      esbPageOffset: 4,
      timaPageOffset: 0,
    });
    assert.equal(observation("adopt: the VMM's own ESB mapping reads source 16's PQ").value, "1");
    assert.match(observation("adopt: after the VMM left, SOURCE 17").error ?? "", /VMM_GONE/);
    assert.match(observation("adopt: after the VMM left, the source read").error ?? "", /VMM_GONE/);
  });

  /** A snapshot the service scenario reported (service-migration-scenario.ts). */
  interface ServiceView {
    backend: string;
    sources: { irq: number; pq: number; masked: boolean; server: number; priority: number; eisn: number }[];
    queues: { hasPage: boolean; qindex: number; qtoggle: number; qaddr: string }[];
    vps: string[];
    words: string[][];
  }
  const view = (name: string): ServiceView => {
    const o = observation(`service: ${name}`);
    assert.equal(o.ok, true, `service: ${name} failed: ${o.error ?? o.errnoName}`);
    return o.value as ServiceView;
  };
  /** Everything but the backend's name and the VP states (kernel difference 4, asserted apart). */
  const guestVisible = ({ sources, queues, words }: ServiceView) => ({ sources, queues, words });
  /** VP_STATE word0 (TIMA OS ring bytes NSR CPPR IPB LSMFB ACK# INC AGE PIPR) without PIPR. */
  const withoutPipr = (vps: string[]) => vps.map((w) => BigInt(`0x${w}`) >> 8n);

  it("service: a controller with pending interrupts moves NATIVE → EMULATED through the DeviceStateService (gRPC) and continues on the model", () => {
    console.log(`power9 tier: service scenario ${JSON.stringify(reports("service-timing"))}`);
    assert.deepEqual(reports("service-failed"), []);
    assert.deepEqual(observation("service: capabilities").value, [
      ["BACKEND_EMULATED", true],
      ["BACKEND_NATIVE", true],
    ]);
    assert.deepEqual(
      (
        observation("service: triggers").value as { delivered: number; coalesced: number; masked: number }[]
      ).map((c) => [c.delivered, c.coalesced, c.masked]),
      [
        [1, 0, 0],
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 1],
      ],
    );
    const running = view("NATIVE running");
    assert.equal(running.backend, "BACKEND_NATIVE");
    assert.deepEqual(
      running.sources.map((s) => s.pq),
      [3, 2, 2],
      "pending: 0x1300 PQ 11 (a coalesced trigger), 0x1301 PQ 10, masked 0x1302 PQ 10",
    );
    assert.deepEqual(running.words, [
      ["80001300", "0", "0", "0"],
      ["80001301", "0", "0", "0"],
    ]);
    const quiesced = view("NATIVE quiesced");
    const imported = view("EMULATED imported");
    assert.equal(imported.backend, "BACKEND_EMULATED");
    assert.equal(observation("service: NATIVE to EMULATED").ok, true);
    assert.deepEqual(guestVisible(imported), guestVisible(quiesced));
    // Kernel difference 4: the kernel's VP_STATE of a vCPU that never ran has the pending
    // priority in IPB but PIPR 0; the model dispatches the imported context (PIPR = 6 and 5).
    assert.deepEqual(withoutPipr(imported.vps), withoutPipr(quiesced.vps));
    assert.deepEqual(
      imported.vps.map((w) => Number(BigInt(`0x${w}`) & 0xffn)),
      [6, 5],
    );
    // The coalesced trigger (Q) survived the move: the EOI re-fires 0x1300 into slot 1 of 0/6.
    assert.equal(observation("service: EMULATED resumed, EOI 0x1300").value, "1");
    const after = view("EMULATED after the EOI");
    assert.deepEqual(after.words[0], ["80001300", "80001300", "0", "0"]);
    assert.equal(after.queues[0]!.qindex, 2);
  });

  it("service: and back EMULATED → NATIVE: the kernel takes the model's state whole and its hardware writes the next event", () => {
    const quiesced = view("EMULATED quiesced");
    const imported = view("NATIVE imported");
    assert.equal(observation("service: EMULATED to NATIVE").ok, true);
    assert.equal(imported.backend, "BACKEND_NATIVE");
    assert.deepEqual({ ...imported, backend: "" }, { ...quiesced, backend: "" });
    const resumed = observation("service: NATIVE resumed, trigger and EOI 0x1301").value as {
      counts: { coalesced: number };
      eoi: string;
    };
    assert.deepEqual([resumed.counts.coalesced, resumed.eoi], [1, "1"]);
    const after = view("NATIVE after the EOI");
    assert.deepEqual(after.words, [
      ["80001300", "80001300", "0", "0"],
      ["80001301", "80001301", "0", "0"],
    ]);
    assert.deepEqual(
      after.queues.map((q) => [q.qindex, q.qtoggle]),
      [
        [2, 1],
        [2, 1],
      ],
    );
  });

  it("service: a source the kernel routed off a vCPU without that queue keeps QEMU's END through NATIVE → EMULATED → NATIVE; the kernel, given that END by the restore, routes it to vCPU 0's queue, where its trigger lands", () => {
    // H_INT_SET_SOURCE_CONFIG for vCPU 1 priority 6: vCPU 1 has no priority-6 queue, so the kernel
    // picks vCPU 0's (book3s_xive.c kvmppc_xive_select_target); QEMU answers its EAT's END,
    // whose target reads from an END never configured as 0 - 0x400 (spapr_xive.c).
    const moved = { answer: [String(0xffff_fc00), "0", String(0x1303)], routed: [0, 6] };
    const seen = ["NATIVE running", "EMULATED after the EOI", "NATIVE after the EOI", "NATIVE restarted"].map(
      (step) =>
        observation(`service: moved source, ${step}`).value as typeof moved & { pickWarnings: number },
    );
    for (const { pickWarnings: _, ...answer } of seen) assert.deepEqual(answer, moved);
    // The restore gave the kernel SOURCE_CONFIG (1, 6) (restoredSourceConfig, as QEMU's
    // kvmppc_xive_post_load): the kernel warned once more that vCPU 1's priority-6 queue has no
    // page (given the routing, 0/6, it would not have), took vCPU 0's, and writes its next slot.
    // The restart's replay of the imported state's records did the same, once (restoreSourceConfig).
    assert.deepEqual(
      seen.map((s) => s.pickWarnings - seen[0]!.pickWarnings),
      [0, 0, 1, 2],
    );
    assert.ok(seen[0]!.pickWarnings >= 1, "the guest's own H_INT_SET_SOURCE_CONFIG warned too");
    // After the restart (queue indices are runtime state: vCPU 0's queue starts again at slot 0).
    const restarted = observation("service: NATIVE restarted, trigger of the moved source").value as {
      delivered: number;
      words: string[][];
    };
    assert.deepEqual([restarted.delivered, restarted.words[0]![0]], [1, "80001303"]);
    const triggered = observation("service: NATIVE trigger of the moved source").value as {
      delivered: number;
      words: string[][];
    };
    assert.equal(triggered.delivered, 1);
    assert.deepEqual(triggered.words, [
      ["80001300", "80001300", "80001303", "0"],
      ["80001301", "80001301", "0", "0"],
    ]);
  });
});
