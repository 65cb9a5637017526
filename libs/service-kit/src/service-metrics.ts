import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from "prom-client";

export type { Counter, Gauge, Histogram } from "prom-client";

/** Latency buckets in seconds for calls served in-process: 100 µs to 10 s. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

let processRegistry: Registry | undefined;

/**
 * The process's own metrics (CPU, memory, event-loop lag, GC, handles: prom-client's default
 * set), collected once per process however many services it runs (tests run dozens).
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The Prometheus metrics of one service (a gRPC service or the gateway), in a registry of its
 * own so that several services can live in one process; its exposition adds the process metrics.
 * prom-client is used only through this class: services declare their metrics with counter(),
 * histogram() and gauge().
 */
export class ServiceMetrics {
  private readonly registry = new Registry();

  /** Media type of exposition(): the Prometheus text format 0.0.4. */
  readonly contentType = this.registry.contentType;

  counter<L extends string>(config: Omit<CounterConfiguration<L>, "registers">): Counter<L> {
    return new Counter({ ...config, registers: [this.registry] });
  }

  histogram<L extends string>(config: Omit<HistogramConfiguration<L>, "registers">): Histogram<L> {
    return new Histogram({ buckets: LATENCY_BUCKETS_SECONDS, ...config, registers: [this.registry] });
  }

  gauge<L extends string>(config: Omit<GaugeConfiguration<L>, "registers">): Gauge<L> {
    return new Gauge({ ...config, registers: [this.registry] });
  }

  /** This service's metrics and the process's, in the Prometheus text format. */
  exposition(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }
}
