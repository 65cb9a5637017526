// What the destination's in-place stop tests (issue 14) check of a delta that does not fit: it
// is refused with the full import's STATE_* reason naming the entry, and nothing changes.
import assert from "node:assert/strict";
import type { ControllerDelta } from "../src/device-state/controller-delta.js";
import type { InterruptController } from "../src/interrupt-controller.js";
import { XiveError } from "../src/xive-error.js";

/** A corruption of a good delta, the reason and field the refusal must give. */
export type Refusal = [name: string, corrupt: (d: ControllerDelta) => void, reason: string, field: string];

/** Each corruption of `stop` is refused as its case says, and leaves the controller's export and vCPUs as they were. */
export function assertRefusedUnchanged(
  controller: InterruptController,
  stop: ControllerDelta,
  cases: readonly Refusal[],
): void {
  const before = Buffer.from(controller.exportState()).toString("hex");
  const vcpus = controller.connectedVcpus();
  for (const [name, corrupt, reason, field] of cases) {
    const bad = structuredClone(stop);
    corrupt(bad);
    assert.throws(
      () => controller.applyStopDelta(bad),
      (e: unknown) => e instanceof XiveError && e.reason === reason && e.field === field,
      name,
    );
    assert.equal(Buffer.from(controller.exportState()).toString("hex"), before, `${name}: nothing applied`);
    assert.deepEqual(controller.connectedVcpus(), vcpus, `${name}: no vCPU connected`);
  }
}
