import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The gateway's Prometheus metrics, in a registry of its own (several gateways can live in one
 * test process): HTTP request rate and latency per route, outcomes of the gRPC calls to each
 * host service, and VM counts read from the registry at scrape time.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route">;
  readonly rpcCalls: Counter<"service" | "method" | "code">;
  readonly rpcDuration: Histogram<"service" | "method">;
  readonly operations: Counter<"kind" | "state">;

  constructor(countVms: () => Promise<Map<string, number>>) {
    const registers = [this.registry];
    this.httpRequests = new Counter({
      name: "vplane_gateway_http_requests_total",
      help: "HTTP requests answered, by method, route template and status code",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.httpDuration = new Histogram({
      name: "vplane_gateway_http_request_duration_seconds",
      help: "HTTP request latency in seconds, from request received to response sent",
      labelNames: ["method", "route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.rpcCalls = new Counter({
      name: "vplane_gateway_rpc_calls_total",
      help: "gRPC calls to host services, by service, method and status code name",
      labelNames: ["service", "method", "code"],
      registers,
    });
    this.rpcDuration = new Histogram({
      name: "vplane_gateway_rpc_duration_seconds",
      help: "gRPC call latency to host services in seconds",
      labelNames: ["service", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.operations = new Counter({
      name: "vplane_gateway_operations_total",
      help: "long-running operations finished, by kind and final state",
      labelNames: ["kind", "state"],
      registers,
    });
    new Gauge({
      name: "vplane_gateway_vms",
      help: "VMs in the registry, by state",
      labelNames: ["state"],
      registers,
      async collect() {
        this.reset();
        for (const [state, count] of await countVms()) this.set({ state }, count);
      },
    });
  }
}
