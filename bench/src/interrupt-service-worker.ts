// The interrupt-controller service in a worker thread (its own event loop, like the separate
// process it is in a deployment), for the gateway benchmark. Posts {address}; stops on "stop".
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parentPort } from "node:worker_threads";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { startServiceForTests } from "@vplane/service-kit/testing";

const dataDir = mkdtempSync(join(tmpdir(), "vplane-bench-ic-"));
const service = await startServiceForTests(interruptControllerDescription, { VPLANE_DATA_DIR: dataDir });
parentPort!.postMessage({ address: service.address });
parentPort!.once("message", () => {
  void service.stop(500).then(() => {
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  });
});
