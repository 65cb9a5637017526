import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { suiteFixture } from "../src/suite-fixture.js";

describe("suiteFixture: started before the block's tests, stopped after them", () => {
  const events: string[] = [];
  const fixture = suiteFixture(
    () => {
      events.push("start");
      return Promise.resolve({ name: "started", hello: () => "hi" });
    },
    (started) => {
      events.push(`stop ${started.name}`);
      return Promise.resolve();
    },
  );
  after(() => assert.deepEqual(events, ["start", "stop started"]));
  // The block's body runs before its hooks: nothing is started yet.
  assert.throws(() => fixture.name, /before its before hook ran/);

  it("its tests read what start gave, properties and methods alike", () => {
    assert.deepEqual([fixture.name, fixture.hello()], ["started", "hi"]);
    assert.deepEqual(events, ["start"]);
  });
});
