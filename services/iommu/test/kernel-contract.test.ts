// The fast tier of the differential suite: the emulated backend against the real kernel's
// answers, recorded by the Arm kernel tier's guest (kernel-tier/arm64, VPLANE_RECORD_FIXTURES=1)
// into test/fixtures/kernel-contract.json. Every npm test holds the model to them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KERNEL_DIFFERENCES, compareWithEmulated, readContractFixture } from "../src/testing/index.js";

describe("the emulated SMMU answers the contract suite as the real kernel's iommufd did", () => {
  const fixture = readContractFixture();

  it("the kernel's answers are recorded (test/fixtures/kernel-contract.json)", () => {
    assert.ok(fixture, "no fixture: run the Arm tier with VPLANE_RECORD_FIXTURES=1");
    assert.match(fixture.kernel, /^Linux version 7\.3\./);
  });

  it("every scenario's observations are the kernel's, except the differences listed with their kernel source", async () => {
    const differences = await compareWithEmulated(fixture!.features, fixture!.scenarios);
    assert.deepEqual(differences, []);
    for (const d of KERNEL_DIFFERENCES) console.log(`known difference: ${d.path}: ${d.why}`);
  });
});
