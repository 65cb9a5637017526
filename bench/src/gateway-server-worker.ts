// One HTTP server in a worker thread for the gateway benchmark, in front of the interrupt-
// controller at workerData.serviceAddress:
//   "gateway": the real gateway app (auth, schema validation, tenant lookup in the registry,
//              proto3 JSON mapping, metrics, rate limiting) with one READY VM;
//   "bare":    a fastify app with two plain routes doing the same work underneath: the same
//              registry read for a VM, and the same ConfigureSources gRPC call.
// Posts {port, token, vm}; stops on "stop".
import { parentPort, workerData } from "node:worker_threads";
import { credentials } from "@grpc/grpc-js";
import { AccessTokens, buildApp, buildGatewayServices } from "@vplane/gateway";
import { ControllerMode } from "@vplane/proto/gen/vplane/interrupt/v1/controller";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { Backend } from "@vplane/proto/gen/vplane/common/v1/backend";
import { unaryCall } from "@vplane/service-kit";
import { openStore } from "@vplane/store";
import Fastify from "fastify";
import pino from "pino";

const { kind, serviceAddress } = workerData as { kind: "gateway" | "bare"; serviceAddress: string };
const log = pino({ level: "warn" });
const VM = "bench-vm";

async function startGateway() {
  const store = openStore("sqlite::memory:");
  const tokens = AccessTokens.inMemory();
  const { token } = tokens.issue({ tenant: "bench", role: "operator" });
  const services = buildGatewayServices({
    log,
    store,
    tokens,
    credentials: credentials.createInsecure(),
    // The limiter stays on (its cost is part of the gateway), high enough not to refuse.
    limits: { rateLimitPerSecond: 1_000_000 },
  });
  await services.hosts.register(
    {
      name: "h1",
      addresses: { interruptController: serviceAddress, iommu: serviceAddress, migration: serviceAddress },
    },
    "api",
  );
  const app = await buildApp(services);
  const principal = { tokenId: "bench", tenant: "bench", role: "operator" as const };
  const operation = await services.lifecycle.create(principal, {
    name: VM,
    vcpus: 1,
    memoryBytes: 16 << 20,
    interruptController: { mode: "xive", nrServers: 4 },
  });
  await services.runner.drain();
  const created = await services.operations.get("bench", operation.name.slice("operations/".length));
  if (created?.value.metadata.state !== "SUCCEEDED")
    throw new Error(`bench VM not created: ${JSON.stringify(created?.value.error)}`);
  const auth = { authorization: `Bearer ${token}` };
  for (const [method, url, body] of [
    ["POST", `/v1/vms/${VM}/vcpus/connect`, { vcpuId: 0, server: 0 }],
    ["POST", `/v1/vms/${VM}/sources/init`, { sources: [{ irq: 10 }] }],
    ["PUT", `/v1/vms/${VM}/queues/0/6`, { queue: { flags: 1, qshift: 16, qaddr: String(1 << 20) } }],
  ] as const) {
    const response = await app.inject({ method, url, headers: auth, payload: body });
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.body}`);
  }
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, token, close: async () => (await app.close(), await store.close()) };
}

async function startBare() {
  const store = openStore("sqlite::memory:");
  const client = new InterruptControllerServiceClient(serviceAddress, credentials.createInsecure());
  const uid = `vbare${Math.random().toString(16).slice(2, 14)}`;
  const name = `vms/${uid}/controller`;
  await unaryCall(client.createController.bind(client), {
    controller: {
      name: "",
      vm: uid,
      mode: ControllerMode.CONTROLLER_MODE_XIVE,
      activeMode: 0,
      nrServers: 4,
      backend: Backend.BACKEND_EMULATED,
      guestMemory: { path: `guest-ram-${uid}.ram`, sizeBytes: BigInt(16 << 20) },
      connectedServers: [],
      sourceCount: 0,
      createTime: undefined,
      nrIrqs: undefined,
    },
    requestId: "",
  });
  await unaryCall(client.connectVcpu.bind(client), { name, vcpuId: 0, server: 0, requestId: "" });
  await unaryCall(client.initSources.bind(client), {
    name,
    sources: [{ irq: 10, levelSensitive: false, asserted: false }],
    requestId: "",
  });
  await unaryCall(client.configureQueue.bind(client), {
    name,
    server: 0,
    priority: 6,
    queue: { flags: 1, qshift: 16, qaddr: BigInt(1 << 20), qtoggle: 0, qindex: 0 },
    requestId: "",
  });
  // The same record the gateway keeps for a VM, so both read and send the same bytes.
  const now = new Date().toISOString();
  await store.put(`vms/bench/${VM}`, {
    name: VM,
    tenant: "bench",
    uid,
    vcpus: 1,
    memoryBytes: 16 << 20,
    interruptController: { mode: "xive", backend: "auto", nrServers: 4 },
    iommu: { backend: "auto", smmus: [] },
    host: "h1",
    placement: { reason: "chosen by free capacity among 1 host(s) that fit (100% left after placement)" },
    state: "READY",
    resolved: {
      interruptController: {
        backend: "emulated",
        reason: "native not available from interrupt-controller (KVM_NOT_PRESENT: /dev/kvm does not exist)",
      },
    },
    guestMemoryPath: `guest-ram-${uid}.ram`,
    createTime: now,
    updateTime: now,
  });
  const app = Fastify({ loggerInstance: log });
  app.get<{ Params: { vm: string } }>("/v1/vms/:vm", async (request, reply) => {
    const entry = await store.get(`vms/bench/${request.params.vm}`);
    if (!entry) return reply.code(404).send({ error: "not found" });
    return entry.value;
  });
  app.post<{ Body: { sources: { irq: number; kvmConfig: string }[] } }>(
    "/v1/vms/:vm/sources/configure",
    async (request) => {
      const answer = await unaryCall(
        client.configureSources.bind(client),
        {
          name,
          sources: request.body.sources.map((s) => ({ irq: s.irq, kvmConfig: BigInt(s.kvmConfig) })),
          requestId: "",
        },
        { timeoutMs: 10_000 },
      );
      return { effectiveServers: answer.effectiveServers };
    },
  );
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, token: "", close: async () => (await app.close(), client.close(), await store.close()) };
}

const server = kind === "gateway" ? await startGateway() : await startBare();
const address = server.app.server.address() as { port: number };
parentPort!.postMessage({ port: address.port, token: server.token, vm: VM });
parentPort!.once("message", () => {
  void server.close().then(() => process.exit(0));
});
