import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connectivityState, type ChannelInterface } from "@grpc/grpc-js";
import type { Capabilities } from "@vplane/proto/gen/vplane/common/v1/backend";
import { CapabilitiesCache } from "../src/hosts/capabilities-cache.js";

/** A channel whose connectivity the test sets; it tells its watchers when it changes. */
function fakeChannel() {
  let state = connectivityState.READY;
  const watchers: (() => void)[] = [];
  const channel = {
    getConnectivityState: () => state,
    watchConnectivityState: (_from: connectivityState, _deadline: number, callback: () => void) =>
      watchers.push(callback),
  } as unknown as ChannelInterface;
  const set = (next: connectivityState) => {
    state = next;
    for (const watcher of watchers.splice(0)) watcher();
  };
  return { channel, set };
}

const answer = (version: string) => ({ version }) as Capabilities;

describe("GetCapabilities answers kept per connection", () => {
  it("keeps an answer while the connection stays READY, at most maxAgeMs (a proxy may hide a restart)", async () => {
    let now = 0;
    const cache = new CapabilitiesCache(60_000, () => now);
    const { channel } = fakeChannel();
    let asked = 0;
    const ask = () => Promise.resolve(answer(`v${++asked}`));
    assert.equal((await cache.get(channel, ask))?.version, "v1");
    now = 59_999;
    assert.equal((await cache.get(channel, ask))?.version, "v1");
    now = 60_000;
    assert.equal((await cache.get(channel, ask))?.version, "v2", "asked again once too old");
  });

  it("drops the answer when its connection leaves READY (the service's process went away)", async () => {
    const cache = new CapabilitiesCache();
    const { channel, set } = fakeChannel();
    let asked = 0;
    const ask = () => Promise.resolve(answer(`v${++asked}`));
    await cache.get(channel, ask);
    set(connectivityState.IDLE);
    set(connectivityState.READY);
    assert.equal((await cache.get(channel, ask))?.version, "v2");
    assert.equal((await cache.get(channel, ask))?.version, "v2");
  });

  it("keeps no failed answer, and none that arrived on a connection already gone", async () => {
    const cache = new CapabilitiesCache();
    const { channel, set } = fakeChannel();
    await assert.rejects(cache.get(channel, () => Promise.reject(new Error("UNAVAILABLE"))));
    assert.equal((await cache.get(channel, () => Promise.resolve(answer("v1"))))?.version, "v1");
    const other = fakeChannel();
    const late = cache.get(other.channel, () => {
      other.set(connectivityState.TRANSIENT_FAILURE);
      return Promise.resolve(answer("old"));
    });
    assert.equal((await late)?.version, "old");
    // Still down (grpc-js reconnects for the next call): that call asks anew.
    assert.equal((await cache.get(other.channel, () => Promise.resolve(answer("new"))))?.version, "new");
    set(connectivityState.IDLE);
  });

  it("concurrent askers share one call", async () => {
    const cache = new CapabilitiesCache();
    const { channel } = fakeChannel();
    let asked = 0;
    const ask = () => Promise.resolve(answer(`v${++asked}`));
    const answers = await Promise.all([cache.get(channel, ask), cache.get(channel, ask)]);
    assert.deepEqual(
      answers.map((a) => a?.version),
      ["v1", "v1"],
    );
  });
});
