import { once } from "node:events";
import { Agent, request } from "node:http";
import { Worker } from "node:worker_threads";
import { closedLoopLoad, type LoadResult } from "./closed-loop-load.js";
import type { BenchRow } from "./result-table.js";

const LOAD = { concurrency: 16, durationMs: 3000, warmupMs: 1000 };
const ROUNDS = 3;
/** Issue 5: the gateway keeps at least 0.7 of a bare fastify route doing the same work. */
const MIN_RATIO = 0.7;
/** KVM SOURCE_CONFIG: server 0, priority 6, EISN 0x42. */
const CONFIGURE_BODY = JSON.stringify({ sources: [{ irq: 10, kvmConfig: String((0x42n << 33n) | 6n) }] });

type Call = "vm-read" | "configure-source";

function httpCall(agent: Agent, port: number, token: string, method: string, path: string, body?: string) {
  return new Promise<void>((resolve, reject) => {
    const req = request(
      {
        agent,
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve()
            : reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function measure(kind: "gateway" | "bare", serviceAddress: string, call: Call): Promise<LoadResult> {
  const worker = new Worker(new URL("./gateway-server-worker.js", import.meta.url), {
    workerData: { kind, serviceAddress },
  });
  const [{ port, token, vm }] = (await once(worker, "message")) as [
    { port: number; token: string; vm: string },
  ];
  const agent = new Agent({ keepAlive: true, maxSockets: LOAD.concurrency });
  const operation =
    call === "vm-read"
      ? () => httpCall(agent, port, token, "GET", `/v1/vms/${vm}`)
      : () => httpCall(agent, port, token, "POST", `/v1/vms/${vm}/sources/configure`, CONFIGURE_BODY);
  const result = await closedLoopLoad(operation, LOAD);
  agent.destroy();
  worker.postMessage("stop");
  await once(worker, "exit");
  return result;
}

function median(results: LoadResult[]): LoadResult {
  return [...results].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(results.length / 2)]!;
}

/**
 * REST calls/s and p50/p99 through the gateway against a bare fastify route doing the same work
 * underneath (a registry read for GET /v1/vms/{vm}; the ConfigureSources gRPC call to the real
 * interrupt-controller, in its own thread, for a source configuration), same run, same HTTP
 * client and concurrency; rounds alternate so drift in the machine hits both alike.
 */
export async function gatewayBench(): Promise<BenchRow[]> {
  const service = new Worker(new URL("./interrupt-service-worker.js", import.meta.url));
  const [{ address }] = (await once(service, "message")) as [{ address: string }];
  const rows: BenchRow[] = [];
  try {
    for (const call of ["vm-read", "configure-source"] as const) {
      const bare: LoadResult[] = [];
      const gateway: LoadResult[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        bare.push(await measure("bare", address, call));
        gateway.push(await measure("gateway", address, call));
      }
      const b = median(bare);
      const g = median(gateway);
      const ratio = g.opsPerSec / b.opsPerSec;
      const name =
        call === "vm-read"
          ? `GET /v1/vms/{vm}, ${LOAD.concurrency} in flight`
          : `POST .../sources/configure (gRPC ConfigureSources), ${LOAD.concurrency} in flight`;
      rows.push(
        { benchmark: name, variant: "bare fastify route (baseline)", ...b },
        {
          benchmark: name,
          variant: "gateway",
          ...g,
          ratio,
          target: `>= ${MIN_RATIO} of bare`,
          met: ratio >= MIN_RATIO,
        },
      );
    }
  } finally {
    service.postMessage("stop");
    await once(service, "exit");
  }
  return rows;
}
