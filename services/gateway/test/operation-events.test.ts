// Operation progress as Server-Sent Events: ordered events with ids, `done` at the end, and a
// reconnect with Last-Event-ID that continues after the last event seen.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FakeHost } from "./support/fake-host.js";
import { openSse, type SseEvent } from "./support/sse-client.js";
import { startGatewayWithHost, type OperationJson, type TestGateway } from "./support/test-gateway.js";

describe("GET /v1/operations/{operation}/events", () => {
  let gw: TestGateway;
  let host: FakeHost;
  let stop: () => Promise<void>;
  let base: string;
  before(async () => {
    ({ gw, host, close: stop } = await startGatewayWithHost());
    ({ base } = await gw.listen());
  });
  after(() => stop());

  const create = async (name: string) => {
    const response = await gw.call("operator", "POST", "/v1/vms", {
      name,
      vcpus: 1,
      memoryBytes: 1 << 20,
      interruptController: { mode: "xive" },
      iommu: { smmus: [{ name: "s0" }, { name: "s1" }] },
    });
    return response.json<OperationJson>().name;
  };
  const collect = async (stream: Awaited<ReturnType<typeof openSse>>) => {
    const events: SseEvent[] = [];
    for (let e = await stream.next(); e; e = await stream.next()) events.push(e);
    return events;
  };

  it("streams progress events in order while the create runs, then `done` with the final operation", async () => {
    host.delayMs = 60;
    const name = await create("watched-1");
    const stream = await openSse(`${base}/v1/${name}/events`, { authorization: `Bearer ${gw.token.viewer}` });
    assert.equal(stream.status, 200);
    const events = await collect(stream);
    const progress = events.filter((e) => e.event === "progress");
    const ids = progress.map((e) => Number(e.id));
    assert.deepEqual(
      ids,
      Array.from({ length: ids.length }, (_, i) => i + 1),
      "every seq from 1, in order",
    );
    const percents = progress.map((e) => (e.data as { progressPercent: number }).progressPercent);
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => a - b),
      "progress never goes back",
    );
    const last = events.at(-1)!;
    assert.equal(last.event, "done");
    assert.equal((last.data as OperationJson).metadata.state, "SUCCEEDED");
    assert.equal((last.data as OperationJson).done, true);
    host.delayMs = 0;
  });

  it("a reconnect with Last-Event-ID gets only the events after it", async () => {
    const name = await create("watched-2");
    const all = await collect(
      await openSse(`${base}/v1/${name}/events`, { authorization: `Bearer ${gw.token.viewer}` }),
    );
    const resumeAfter = 3;
    const rest = await collect(
      await openSse(`${base}/v1/${name}/events`, {
        authorization: `Bearer ${gw.token.viewer}`,
        "last-event-id": String(resumeAfter),
      }),
    );
    const ids = (events: SseEvent[]) => events.filter((e) => e.event === "progress").map((e) => Number(e.id));
    assert.deepEqual(
      ids(rest),
      ids(all).filter((id) => id > resumeAfter),
    );
    assert.equal(rest.at(-1)?.event, "done");
  });

  it("HEAD on a running operation's stream answers at once (issue 17 point 6)", async () => {
    host.delayMs = 2000;
    try {
      const name = await create("watched-head");
      const response = await fetch(`${base}/v1/${name}/events`, {
        method: "HEAD",
        headers: { authorization: `Bearer ${gw.token.viewer}` },
        signal: AbortSignal.timeout(1000),
      });
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
      assert.equal((await gw.call("viewer", "GET", `/v1/${name}`)).json<OperationJson>().done, false);
    } finally {
      host.delayMs = 0;
    }
  });
});
