// The fast tier (every npm test): the emulated backend, on this host, runs the differential
// contract and must answer what the real kernel answered in the recorded POWER9 guest runs.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openContractBackend } from "@vplane/interrupt-controller/native";
import { unexplainedDifferences } from "../src/contract/compare-observations.js";
import {
  FIXTURE_PATH,
  formatContractFixture,
  readContractFixture,
} from "../src/contract/contract-fixture.js";
import { runXiveContract } from "../src/contract/xive-contract.js";

describe("the emulated XIVE backend answers the contract as the real 6.1 kernel did (recorded fixtures)", () => {
  const fixture = readContractFixture();
  const dir = mkdtempSync(join(tmpdir(), "xive-contract-"));
  const host = runXiveContract(openContractBackend, "EMULATED", "EMULATED", dir);
  rmSync(dir, { recursive: true, force: true });

  for (const [run, recorded] of Object.entries(fixture.runs)) {
    it(`every observable of the ${run} guest run: errno, reason, PQ, EQ words, qindex/qtoggle, VP state, exported state, H_INT_* codes and outputs`, () => {
      assert.ok(recorded.length > 60, `the fixture's ${run} run has ${recorded.length} steps`);
      assert.deepEqual(unexplainedDifferences(recorded, host), []);
    });
  }

  it("the comparison fails on a changed answer (the check can fail)", () => {
    const recorded = Object.values(fixture.runs)[0]!;
    const changed = host.map((o) => (o.step === "ESB GET 16 after trigger" ? { ...o, value: "3" } : o));
    assert.equal(unexplainedDifferences(recorded, changed).length, 1);
  });
});

describe("the fixture writer (VPLANE_RECORD_FIXTURES=1)", () => {
  it("writes the file as prettier formats it: the committed fixture comes out byte for byte", async () => {
    assert.equal(await formatContractFixture(readContractFixture()), readFileSync(FIXTURE_PATH, "utf8"));
  });
});
