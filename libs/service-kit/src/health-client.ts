import { makeGenericClientConstructor, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { service as healthDefinition } from "grpc-health-check";
import { clientChannelOptions } from "./channel-options.js";

const GenericHealthClient = makeGenericClientConstructor(healthDefinition, "grpc.health.v1.Health");

/** grpc.health.v1 Check as its callers call it, typed (grpc-health-check's generic client is not). */
interface UntypedCheck {
  check(
    request: { service: string },
    options: { deadline: number },
    callback: (error: Error | null, response?: { status?: string }) => void,
  ): void;
  close(): void;
}

/** What a health check learnt: the server's answer, or none in time (any error counts as none). */
export type HealthAnswer = "SERVING" | "NOT_SERVING" | "UNREACHABLE";

/**
 * A grpc.health.v1.Health client of one address, for probes (the gateway's readiness and host
 * status, the container image's HEALTHCHECK). One HTTP/2 connection, reused across checks until
 * close().
 */
export class HealthClient {
  private readonly client: UntypedCheck;

  constructor(
    address: string,
    credentials: ChannelCredentials,
    options: ChannelOptions = clientChannelOptions(),
  ) {
    this.client = new GenericHealthClient(address, credentials, options) as unknown as UntypedCheck;
  }

  /** Check of `service` ("": the whole server) with a deadline of `timeoutMs`; never throws. */
  check(timeoutMs = 1000, service = ""): Promise<HealthAnswer> {
    return new Promise((done) => {
      this.client.check({ service }, { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error) done("UNREACHABLE");
        else done(response?.status === "SERVING" ? "SERVING" : "NOT_SERVING");
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
