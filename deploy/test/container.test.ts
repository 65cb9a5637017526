// Container tier: the image built from deploy/Dockerfile runs a service that a host-side client
// reaches over gRPC (health and GetCapabilities), and the image's HEALTHCHECK reports it healthy.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { Wait, getContainerRuntimeClient, type StartedTestContainer } from "testcontainers";
import { isHealthy } from "../src/health-probe.js";
import { buildVplaneImage, containerTier } from "./container-runtime.js";

const { skip, missing } = await containerTier();

let container: StartedTestContainer | undefined;
let address = "";

before(
  async () => {
    if (skip) return;
    if (missing) throw new Error(`CI=true and ${missing}`);
    const image = await buildVplaneImage("vplane-test:latest");
    container = await image
      .withEnvironment({ VPLANE_SERVICE: "interrupt-controller", VPLANE_LOG_LEVEL: "info" })
      .withExposedPorts(50051)
      .withWaitStrategy(Wait.forHealthCheck()) // the image's own HEALTHCHECK
      .withStartupTimeout(60_000)
      .start();
    address = `${container.getHost()}:${container.getMappedPort(50051)}`;
  },
  { timeout: 600_000 },
);

after(async () => {
  await container?.stop({ timeout: 10_000 });
});

test("the service container answers grpc.health.v1 Check with SERVING from the host", { skip }, async () => {
  assert.equal(await isHealthy("grpc", address, 5000), true);
});

test(
  "the service container answers GetCapabilities: emulated available, native with a reason",
  { skip },
  async () => {
    const client = new InterruptControllerServiceClient(address, credentials.createInsecure());
    try {
      const { capabilities } = await unaryCall(client.getCapabilities.bind(client), {}, { timeoutMs: 5000 });
      assert.equal(capabilities?.service, "interrupt-controller");
      const emulated = capabilities?.backends.find((b) => b.backend === Backend.BACKEND_EMULATED);
      const native = capabilities?.backends.find((b) => b.backend === Backend.BACKEND_NATIVE);
      assert.equal(emulated?.available, true);
      // A container on this x86 host has no POWER9 KVM: native says why, in words and a code.
      assert.equal(native?.available, false);
      assert.notEqual(native?.unavailableReason, "");
      assert.notEqual(native?.unavailableCode, "");
    } finally {
      client.close();
    }
  },
);

test("the container stops gracefully on SIGTERM (exit code 0)", { skip }, async () => {
  const stopped = await container!.stop({ timeout: 10_000, remove: false });
  container = undefined;
  const runtime = await getContainerRuntimeClient();
  const inspected = await runtime.container.inspect(runtime.container.getById(stopped.getId()));
  await runtime.container.remove(runtime.container.getById(stopped.getId()));
  assert.equal(inspected.State.ExitCode, 0);
});
