// A live migration's finish resumes the controller before it writes it (issue 14: the write is
// out of the downtime), and FinishImport answers only once that write is durable. A write that
// fails after the resume: the answer is the failure (the source keeps the VM), the controller ran
// here meanwhile, and its records are still preparing, so a restart drops them and the release a
// failed migration makes leaves nothing behind.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { finishWriteHosts } from "@vplane/service-kit/testing";
import { controllerCrudHandlers } from "../src/controller-crud-handlers.js";
import { controllerName, ControllerRegistry } from "../src/controller-registry.js";
import { controllerVmDevices } from "../src/controller-vm-devices.js";
import { deviceHandlers } from "../src/device-handlers.js";
import { RAM_BYTES, controllerSpec } from "./conformance-fixtures.js";

describe("a finish whose write fails after the resume: the failure answered, nothing left", () => {
  const hosts = finishWriteHosts(
    "interrupt-controller",
    (store, options) => new ControllerRegistry(store, { ...options, maxControllers: 4 }),
    controllerVmDevices,
  );

  /** `vm`'s controller resumed on the destination from the source's iteration 0 and stop, its write failed. */
  async function finishFailing(vm: string) {
    const { source, dataDir, src, dst } = hosts;
    const name = controllerName(vm);
    const device = deviceHandlers(source, () => undefined);
    await controllerCrudHandlers(source, dataDir).createController({
      controller: controllerSpec(vm, ControllerMode.CONTROLLER_MODE_XIVE),
      requestId: "",
    });
    await device.connectVcpu({ name, vcpuId: 0, server: 0, requestId: "" });
    const fields = {
      vm,
      guestMemory: { path: `${vm}.ram`, sizeBytes: RAM_BYTES },
      backend: Backend.BACKEND_UNSPECIFIED,
    };
    await dst.prepareImport({ ...fields, sections: src.readPreCopy(vm, 0) }, 0);
    // After the last iteration: a second vCPU, so that the stop carries a delta.
    await device.connectVcpu({ name, vcpuId: 1, server: 1, requestId: "" });
    const stop = src.stopAndCopy(vm, "destination:1");
    assert.ok(stop.sections.length > 0, "the stop moves a delta");
    await hosts.finishFailing({ ...fields, sections: stop.sections });
    assert.equal(
      hosts.destination.requireVm(vm).backend.quiesced,
      false,
      "the controller ran here meanwhile",
    );
  }

  hosts.cases(finishFailing);
});
