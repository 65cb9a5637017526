import {
  status,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { service as healthDefinition } from "grpc-health-check";

export type ServingStatus = "SERVING" | "NOT_SERVING";
type HealthRequest = { service: string };
type HealthResponse = { status: string };

/**
 * grpc.health.v1.Health (Check and Watch) over grpc-health-check's proto. Written here rather
 * than taken from that package because a shutdown must also end the Watch streams after telling
 * them NOT_SERVING; a watcher left open would hold a graceful shutdown until it is forced.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{
    service: string;
    call: ServerWritableStream<HealthRequest, HealthResponse>;
  }>();

  constructor(serviceNames: string[]) {
    for (const name of ["", ...serviceNames]) this.statuses.set(name, "NOT_SERVING");
  }

  setAll(value: ServingStatus): void {
    for (const name of this.statuses.keys()) this.statuses.set(name, value);
    for (const w of this.watchers) w.call.write({ status: value });
  }

  /** Ends every Watch stream (OK) so they do not hold a draining server open. */
  endWatches(): void {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  addToServer(server: Server): void {
    server.addService(healthDefinition, {
      check: (
        call: ServerUnaryCall<HealthRequest, HealthResponse>,
        callback: sendUnaryData<HealthResponse>,
      ) => {
        const value = this.statuses.get(call.request.service);
        if (value) callback(null, { status: value });
        else callback({ code: status.NOT_FOUND, details: `unknown service '${call.request.service}'` });
      },
      watch: (call: ServerWritableStream<HealthRequest, HealthResponse>) => {
        const watcher = { service: call.request.service, call };
        this.watchers.add(watcher);
        call.once("cancelled", () => this.watchers.delete(watcher));
        call.write({ status: this.statuses.get(call.request.service) ?? "SERVICE_UNKNOWN" });
      },
    });
  }
}
