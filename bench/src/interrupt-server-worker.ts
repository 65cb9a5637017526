// Runs the interrupt-controller service in a worker thread (its own event loop, like the echo
// server worker), logging at info level to /dev/null as the service-kit echo server does.
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parentPort } from "node:worker_threads";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { configSpecOf, createLogger, loadConfig, startService } from "@vplane/service-kit";
import pino from "pino";

const dataDir = mkdtempSync(join(tmpdir(), "vplane-ic-bench-"));
const config = loadConfig(configSpecOf(interruptControllerDescription), {
  argv: ["--addr=127.0.0.1:0", `--data-dir=${dataDir}`],
  env: {},
});
const log = createLogger({
  name: "bench-interrupt-controller",
  level: "info",
  destination: pino.destination({ fd: openSync("/dev/null", "w"), sync: false }),
});
const running = await startService(interruptControllerDescription, config, log);
parentPort!.postMessage({ port: running.server.port });
parentPort!.once("message", () => {
  void running.stop(1000).then(() => {
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  });
});
