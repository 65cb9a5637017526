import assert from "node:assert/strict";
import { after, test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { MigrationServiceClient } from "@vplane/proto/gen/vplane/migration/v1/service";
import { unaryCall } from "@vplane/service-kit";
import { startServiceForTests } from "@vplane/service-kit/testing";
import { migrationDescription } from "../src/migration-service.js";

const service = await startServiceForTests(migrationDescription);
const client = new MigrationServiceClient(service.address, credentials.createInsecure());
after(async () => {
  client.close();
  await service.stop(1000);
});

test("GetCapabilities: emulated state transfer is offered; native says why not", async () => {
  const { capabilities } = await unaryCall(client.getCapabilities.bind(client), {}, { timeoutMs: 5000 });
  assert.equal(capabilities?.service, "migration");
  const byBackend = new Map(capabilities?.backends.map((b) => [b.backend, b]));
  assert.equal(byBackend.get(Backend.BACKEND_EMULATED)?.available, true);
  assert.equal(byBackend.get(Backend.BACKEND_NATIVE)?.available, false);
  assert.equal(byBackend.get(Backend.BACKEND_NATIVE)?.unavailableCode, "NO_NATIVE_DEVICES");
});
