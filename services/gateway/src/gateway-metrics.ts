import { ServiceMetrics, type Counter, type Histogram } from "@vplane/service-kit";

/**
 * The gateway's Prometheus metrics, in a ServiceMetrics of its own (several gateways can live in
 * one test process; the exposition adds the process metrics): HTTP request rate and latency per
 * route pattern, outcomes of the gRPC calls to each host service, and VM counts read from the
 * registry at scrape time.
 */
export class GatewayMetrics {
  readonly registry = new ServiceMetrics();
  readonly httpRequests: Counter<"method" | "route" | "status">;
  readonly httpDuration: Histogram<"method" | "route">;
  readonly rpcCalls: Counter<"service" | "method" | "code">;
  readonly rpcDuration: Histogram<"service" | "method">;
  readonly operations: Counter<"kind" | "state">;

  constructor(countVms: () => Promise<Map<string, number>>) {
    this.httpRequests = this.registry.counter({
      name: "vplane_gateway_http_requests_total",
      help: "HTTP requests answered, by method, route pattern (as in the OpenAPI paths) and status code",
      labelNames: ["method", "route", "status"],
    });
    this.httpDuration = this.registry.histogram({
      name: "vplane_gateway_http_request_duration_seconds",
      help: "HTTP request latency in seconds, from request received to response sent",
      labelNames: ["method", "route"],
    });
    this.rpcCalls = this.registry.counter({
      name: "vplane_gateway_rpc_calls_total",
      help: "gRPC calls to host services, by service, method and status code name",
      labelNames: ["service", "method", "code"],
    });
    this.rpcDuration = this.registry.histogram({
      name: "vplane_gateway_rpc_duration_seconds",
      help: "gRPC call latency to host services in seconds",
      labelNames: ["service", "method"],
    });
    this.operations = this.registry.counter({
      name: "vplane_gateway_operations_total",
      help: "long-running operations finished, by kind and final state",
      labelNames: ["kind", "state"],
    });
    this.registry.gauge({
      name: "vplane_gateway_vms",
      help: "VMs in the registry, by state",
      labelNames: ["state"],
      async collect() {
        this.reset();
        for (const [state, count] of await countVms()) this.set({ state }, count);
      },
    });
  }
}
