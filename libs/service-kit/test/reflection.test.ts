import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { it } from "node:test";
import { credentials, loadPackageDefinition, type ClientDuplexStream } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { startEcho } from "./support.js";

type ReflectionResponse = { listServicesResponse?: { service: Array<{ name: string }> } };
type ReflectionClient = {
  serverReflectionInfo(): ClientDuplexStream<{ listServices: string }, ReflectionResponse>;
  close(): void;
};

it("serves gRPC server reflection listing the service, health and reflection", async () => {
  const env = await startEcho();
  const protoPath = createRequire(import.meta.url).resolve(
    "@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto",
  );
  const loaded = loadPackageDefinition(loadSync(protoPath)) as unknown as {
    grpc: {
      reflection: { v1: { ServerReflection: new (address: string, creds: unknown) => ReflectionClient } };
    };
  };
  const client = new loaded.grpc.reflection.v1.ServerReflection(
    env.service.server.address,
    credentials.createInsecure(),
  );
  const stream = client.serverReflectionInfo();
  const response = await new Promise<ReflectionResponse>((resolve, reject) => {
    stream.once("data", resolve);
    stream.once("error", reject);
    stream.write({ listServices: "" });
  });
  stream.end();
  const names = response.listServicesResponse!.service.map((s) => s.name);
  assert.ok(names.includes("vplane.testing.v1.EchoService"), names.join(","));
  assert.ok(names.includes("vplane.interrupt.v1.InterruptControllerService"), names.join(","));
  client.close();
  env.echo.close();
  env.health.close();
  await env.service.stop(1000);
});
