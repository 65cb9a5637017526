// The interrupt-controller verbs, in the order a newcomer takes them to a first interrupt (the
// README's walk-through): each verb's answer is read back through another verb.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startEmbeddedStack, type EmbeddedStack } from "./embedded-stack.js";

interface Source {
  source: { irq: number; pq: number | string; eisn: number; server: number; priority: number };
}

describe("vplanectl interrupt-controller verbs", () => {
  let stack: EmbeddedStack;
  before(async () => {
    stack = await startEmbeddedStack();
    await stack.createVm("vm-1");
  });
  after(() => stack?.stop());

  it("vcpus connect: server defaults to the vCPU id; connecting it twice is ALREADY_EXISTS with errno EBUSY (16)", async () => {
    const { controller } = await stack.json<{ controller: { connectedServers: number[] } }>([
      "vcpus",
      "connect",
      "vm-1",
      "--vcpu",
      "0",
    ]);
    assert.deepEqual(controller.connectedServers, [0]);
    const again = await stack.cli(["vcpus", "connect", "vm-1", "--vcpu", "0"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ALREADY_EXISTS VCPU_ALREADY_CONNECTED: .*errno=16/);
  });

  it("queues configure then get: a 64 KiB queue at the address given, index 0", async () => {
    await stack.json([
      "queues",
      "configure",
      "vm-1",
      "--server",
      "0",
      "--priority",
      "6",
      "--qaddr",
      "0x100000",
    ]);
    const { queue } = await stack.json<{ queue: { qaddr: string; qshift: number; qindex: number } }>([
      "queues",
      "get",
      "vm-1",
      "0",
      "6",
    ]);
    assert.deepEqual([queue.qaddr, queue.qshift, queue.qindex], [String(0x100000), 16, 0]);
  });

  it("sources init then configure then get: an MSI starts off (PQ=01), routed with EISN = irq by default", async () => {
    await stack.json(["sources", "init", "vm-1", "--irq", "0x1000"]);
    await stack.json(["sources", "configure", "vm-1", "--irq", "0x1000", "--server", "0", "--priority", "6"]);
    const { source } = await stack.json<Source>(["sources", "get", "vm-1", "4096"]);
    assert.equal(source.eisn, 4096, "EISN defaults to the irq");
    assert.equal(Number(source.pq), 1, "KVM SOURCE leaves an MSI at PQ=01 (off)");
  });

  it("trigger on PQ=01 is not forwarded (coalesced, PQ stays 01); esb set-pq-00 answers the old PQ and arms it; the next trigger is delivered", async () => {
    const first = await stack.json<{ delivered: number; coalesced: number }>([
      "trigger",
      "vm-1",
      "--irq",
      "4096",
    ]);
    assert.deepEqual([first.delivered, first.coalesced], [0, 1]);
    const old = await stack.json<{ value: string }>(["esb", "vm-1", "4096", "set-pq-00"]);
    assert.equal(old.value, "1", "PQ=01 is off: the trigger left it as it was");
    const second = await stack.json<{ delivered: number }>(["trigger", "vm-1", "--irq", "4096"]);
    assert.equal(second.delivered, 1);
    const { queue } = await stack.json<{ queue: { qindex: number } }>(["queues", "get", "vm-1", "0", "6"]);
    assert.equal(queue.qindex, 1, "the event was written into the queue");
    const pq = await stack.json<{ value: string }>(["esb", "vm-1", "4096", "get"]);
    assert.equal(pq.value, "2", "delivered: PQ=10 until the guest's EOI");
  });

  it("tima set-cppr 0xff raises the vCPU's line (priority 6 pending), tima ack takes the interrupt and lowers it; events --since replays the buffer and exits", async () => {
    await stack.json(["tima", "vm-1", "0", "set-cppr", "--value", "0xff"]);
    const ack = await stack.json<{ value: string }>(["tima", "vm-1", "0", "ack"]);
    assert.equal(Number(ack.value), (0x80 << 8) | 6, "NSR had the OS bit; CPPR becomes priority 6");
    // Signals are numbered from 1: after 1 (raised) comes 2 (lowered by the ack).
    const replayed = await stack.cli(["events", "vm-1", "--since", "1", "--idle-ms", "500", "-o", "json"]);
    assert.equal(replayed.code, 0, replayed.stderr);
    const events = replayed.stdout
      .trim()
      .split("\n")
      .map(
        (line) =>
          JSON.parse(line) as { id: string; event: string; data: { raised: boolean; server: number } },
      );
    assert.deepEqual(
      events.map((e) => [e.id, e.event, e.data.raised, e.data.server]),
      [["2", "signal", false, 0]],
    );
  });

  it("events without --follow exits once the stream is quiet, having printed nothing new", async () => {
    const started = Date.now();
    const quiet = await stack.cli(["events", "vm-1", "--idle-ms", "300"]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stdout, "");
    assert.ok(Date.now() - started < 20_000);
  });

  it("esb and tima refuse a raw access without its offset, and a bad op, as usage errors", async () => {
    assert.equal((await stack.cli(["esb", "vm-1", "4096", "load"])).code, 2);
    assert.equal((await stack.cli(["esb", "vm-1", "4096", "frob"])).code, 2);
    assert.equal((await stack.cli(["tima", "vm-1", "0", "store", "--offset", "0x20011"])).code, 2);
  });
});
