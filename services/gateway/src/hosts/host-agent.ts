import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { availableParallelism, hostname, totalmem } from "node:os";
import type { ChannelCredentials } from "@grpc/grpc-js";
import { InterruptControllerServiceClient } from "@vplane/proto/gen/vplane/interrupt/v1/service";
import { IommuServiceClient } from "@vplane/proto/gen/vplane/iommu/v1/service";
import { clientChannelOptions, unaryCall, VPLANE_VERSION, type Logger } from "@vplane/service-kit";
import type { HostJoin } from "../schemas/host-schema.js";
import { RESOURCE_ID_PATTERN } from "../schemas/resource-id.js";
import type { HostAgentOptions } from "./host-agent-options.js";

/** Either service client that reports its limits. */
type CapabilitiesClient = InterruptControllerServiceClient | IommuServiceClient;

/** What the gateway answers to a join: when to send the next heartbeat. */
interface JoinAnswer {
  heartbeatMs: number;
}

/** The state of an agent: a discriminated union, one `setState` (see HostAgent). */
type AgentState =
  | { t: "starting" }
  | { t: "joined"; through: string; atMs: number }
  | { t: "retrying"; error: string; since: number }
  | { t: "stopped" };

const RETRY_MS = 1_000;
const REQUEST_TIMEOUT_MS = 5_000;

/** Where the credential of `host` is: the file itself, or, in a folder, the file named after it. */
export function credentialPath(configured: string, host: string): string {
  return statSync(configured).isDirectory() ? join(configured, host) : configured;
}

/** The host id a configured name stands for: a DNS name cut at its first dot, checked. */
export function hostIdOf(configured: string): string {
  const id = (configured || hostname()).split(".")[0]!.toLowerCase();
  if (!new RegExp(RESOURCE_ID_PATTERN).test(id))
    throw new Error(
      `host name '${configured || hostname()}' does not give a valid host id (1-63 of a-z, 0-9, '-')`,
    );
  return id;
}

/**
 * A host's agent: joins the gateway fleet as this host (POST /v1/hosts/{host}:join with the host's
 * own credential), declaring where its services are and what it may hold, then renews the lease
 * at the interval the gateway names. A gateway that fails is followed by the next URL; the agent
 * never gives up (the lease lapses while no gateway answers, so the fleet stops placing VMs here).
 * Capacity: vCPUs and guest RAM from its options (the machine's by default), VMs and SMMUs from
 * what its interrupt-controller and iommu say they hold at most (GetCapabilities max_controllers,
 * max_smmus).
 */
export class HostAgent {
  private state: AgentState = { t: "starting" };
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private readonly id: string;
  private readonly gateways: URL[];
  private readonly local: [string, string, string];
  private readonly gatewayCa: Buffer | undefined;

  constructor(
    private readonly options: HostAgentOptions,
    private readonly credentials: ChannelCredentials,
    private readonly log: Logger,
  ) {
    this.id = hostIdOf(options.hostName);
    this.gateways = options.gatewayUrls.split(",").map((url) => new URL(url.trim()));
    const local = options.services.split(",").map((address) => address.trim());
    if (local.length !== 3)
      throw new Error("--services needs three addresses: interrupt-controller, iommu, migration");
    this.local = local as [string, string, string];
    this.gatewayCa = options.gatewayCa ? readFileSync(options.gatewayCa) : undefined;
    if (!options.tokenFile)
      throw new Error("--token-file (VPLANE_HOST_TOKEN_FILE) is required: the host's credential");
  }

  get hostId(): string {
    return this.id;
  }

  get current(): AgentState {
    return this.state;
  }

  /** Joins now (resolving once the first join was answered either way), then keeps the lease. */
  async start(): Promise<void> {
    await this.beat();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.setState({ t: "stopped" });
  }

  /** What this host declares now. */
  async declaration(): Promise<HostJoin> {
    const advertised = (address: string) => {
      if (!this.options.advertiseHost) return address;
      const port = address.slice(address.lastIndexOf(":") + 1);
      const host = this.options.advertiseHost.includes(":")
        ? `[${this.options.advertiseHost}]`
        : this.options.advertiseHost;
      return `${host}:${port}`;
    };
    const [interruptController, iommu, migration] = this.local.map(advertised) as [string, string, string];
    return {
      addresses: { interruptController, iommu, migration },
      capacity: {
        vcpus: this.options.vcpus || availableParallelism(),
        memoryBytes: this.options.memoryBytes || totalmem(),
        vms: await this.limitOf(new InterruptControllerServiceClient(...this.dial(0)), "max_controllers"),
        smmus: await this.limitOf(new IommuServiceClient(...this.dial(1)), "max_smmus"),
      },
      agentVersion: VPLANE_VERSION,
    };
  }

  private stopped(): boolean {
    return this.state.t === "stopped";
  }

  private setState(state: AgentState): void {
    const before = this.state.t;
    this.state = state;
    if (state.t === "retrying" && before !== "retrying")
      this.log.warn({ host: this.id, err: state.error }, "could not join the fleet; retrying");
    if (state.t === "joined" && before !== "joined")
      this.log.info({ host: this.id, gateway: state.through }, "joined the fleet");
  }

  private async beat(): Promise<void> {
    if (this.stopped()) return;
    let delay = RETRY_MS;
    try {
      const body = JSON.stringify(await this.declaration());
      const token = readFileSync(credentialPath(this.options.tokenFile, this.id), "utf8").trim();
      // The gateways in turn, starting with the one that answered last.
      const failures: string[] = [];
      for (let tried = 0; tried < this.gateways.length; tried++) {
        const gateway = this.gateways[(this.next + tried) % this.gateways.length]!;
        try {
          const answer = await this.join(gateway, token, body);
          this.next = (this.next + tried) % this.gateways.length;
          this.setState({ t: "joined", through: gateway.origin, atMs: Date.now() });
          delay = answer.heartbeatMs;
          failures.length = 0;
          break;
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
      if (failures.length > 0) throw new Error(failures.join("; "));
    } catch (error) {
      this.setState({ t: "retrying", error: (error as Error).message, since: Date.now() });
    }
    if (!this.stopped()) this.timer = setTimeout(() => void this.beat(), delay);
  }

  private join(gateway: URL, token: string, body: string): Promise<JoinAnswer> {
    const url = new URL(
      `v1/hosts/${this.id}:join`,
      gateway.href.endsWith("/") ? gateway : `${gateway.href}/`,
    );
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method: "POST",
          timeout: REQUEST_TIMEOUT_MS,
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
          ...(this.gatewayCa ? { ca: this.gatewayCa } : {}),
        },
        (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => (text += chunk));
          response.on("end", () => {
            if (response.statusCode === 200) resolve(JSON.parse(text) as JoinAnswer);
            else reject(new Error(`${url.origin} answered ${response.statusCode}: ${text.slice(0, 300)}`));
          });
        },
      );
      req.on("timeout", () =>
        req.destroy(new Error(`${url.origin} did not answer in ${REQUEST_TIMEOUT_MS} ms`)),
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  /** The arguments of a client of local service `index` (interrupt-controller, iommu, migration). */
  private dial(index: 0 | 1): [string, ChannelCredentials, ReturnType<typeof clientChannelOptions>] {
    return [this.local[index], this.credentials, clientChannelOptions()];
  }

  /** A limit a local service reports (GetCapabilities limits): the most of a device it holds. */
  private async limitOf(client: CapabilitiesClient, limit: string): Promise<number> {
    try {
      const { capabilities } = await unaryCall(
        client.getCapabilities.bind(client),
        {},
        { timeoutMs: REQUEST_TIMEOUT_MS },
      );
      const max = Number(capabilities?.limits[limit] ?? 0);
      if (!(max > 0)) throw new Error(`${capabilities?.service ?? "a service"} reports no ${limit} limit`);
      return max;
    } finally {
      client.close();
    }
  }
}
