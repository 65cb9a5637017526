import type { Counter, Histogram, ServiceMetrics } from "./service-metrics.js";

/** How a gRPC method streams (go-grpc-prometheus's grpc_type). */
export type RpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

type MethodLabels = { grpc_service: string; grpc_method: string; grpc_type: RpcType };

interface MethodSeries {
  labels: MethodLabels;
  handled: Map<string, Counter.Internal>;
  seconds: Histogram.Internal<keyof MethodLabels>;
}

/**
 * Per-RPC metrics of a gRPC server, named as go-grpc-prometheus names them so that existing
 * dashboards read them: grpc_server_handled_total and grpc_server_handling_seconds (a stream's
 * handling time is its lifetime). Each method's labelled series are looked up once.
 */
export class RpcServerMetrics {
  private readonly handled: Counter<keyof MethodLabels | "grpc_code">;
  private readonly seconds: Histogram<keyof MethodLabels>;
  private readonly series = new Map<string, MethodSeries>();

  constructor(metrics: ServiceMetrics) {
    this.handled = metrics.counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by service, method, type and status code name",
      labelNames: ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
    });
    this.seconds = metrics.histogram({
      name: "grpc_server_handling_seconds",
      help: "time from an RPC's arrival to its status, in seconds (streams: their lifetime)",
      labelNames: ["grpc_service", "grpc_method", "grpc_type"],
    });
  }

  /** Records one finished call; `path` is grpc-js's "/package.Service/Method". */
  record(path: string, type: RpcType, code: string, seconds: number): void {
    const series = this.seriesOf(path, type);
    let handled = series.handled.get(code);
    if (!handled) {
      handled = this.handled.labels({ ...series.labels, grpc_code: code });
      series.handled.set(code, handled);
    }
    handled.inc();
    series.seconds.observe(seconds);
  }

  private seriesOf(path: string, type: RpcType): MethodSeries {
    const key = `${type} ${path}`;
    let series = this.series.get(key);
    if (!series) {
      const slash = path.lastIndexOf("/");
      const labels = {
        grpc_service: path.slice(1, slash),
        grpc_method: path.slice(slash + 1),
        grpc_type: type,
      };
      series = { labels, handled: new Map(), seconds: this.seconds.labels(labels) };
      this.series.set(key, series);
    }
    return series;
  }
}
