import { option, type ConfigOf } from "@vplane/service-kit";
import { gatewayOptionsSpec } from "../gateway-options.js";

/**
 * The host agent's options: which host it speaks for, which gateways it joins through and with
 * what credential, where the host's services are and what the host declares it may hold.
 */
export const hostAgentOptionsSpec = {
  hostName: option.string({
    env: "VPLANE_HOST_NAME",
    flag: "host-name",
    doc: "host id to join as (1-63 of a-z, 0-9, '-'); a DNS name is cut at its first dot (Kubernetes: the node name); unset: this machine's host name",
    default: "",
  }),
  gatewayUrls: option.string({
    env: "VPLANE_HOST_GATEWAY_URLS",
    flag: "gateway-urls",
    doc: "the gateways' base URLs, comma-separated (http:// or https://), tried in turn",
    default: "http://127.0.0.1:8080",
  }),
  gatewayCa: option.string({
    env: "VPLANE_HOST_GATEWAY_CA",
    flag: "gateway-ca",
    doc: "PEM CA path the gateways' HTTPS certificates chain to; unset: the system's CAs",
    default: "",
  }),
  tokenFile: option.string({
    env: "VPLANE_HOST_TOKEN_FILE",
    flag: "token-file",
    doc: "this host's credential (issue-token.js --role host --host NAME): a file, or a folder holding one file per host id (a Kubernetes Secret with a key per node)",
    default: "",
  }),
  services: option.string({
    env: "VPLANE_HOST_SERVICES",
    flag: "services",
    doc: "this host's interrupt-controller, iommu and migration gRPC addresses as the agent dials them, comma-separated",
    default: "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053",
  }),
  advertiseHost: option.string({
    env: "VPLANE_HOST_ADVERTISE_HOST",
    flag: "advertise-host",
    doc: "the address gateways and other hosts dial this host's services at (their ports as in --services); unset: as in --services",
    default: "",
  }),
  vcpus: option.integer({
    env: "VPLANE_HOST_VCPUS",
    flag: "vcpus",
    doc: "vCPUs this host declares it may run; 0: one per CPU of this machine",
    default: 0,
    min: 0,
    max: 1_000_000,
  }),
  memoryBytes: option.integer({
    env: "VPLANE_HOST_MEMORY_BYTES",
    flag: "memory-bytes",
    doc: "guest RAM this host declares it may hold, bytes; 0: this machine's memory",
    default: 0,
    min: 0,
    max: 2 ** 53 - 1,
  }),
  // The same meaning as for the gateway, which dials the same services.
  serviceTlsCa: gatewayOptionsSpec.serviceTlsCa,
  serviceTlsCert: gatewayOptionsSpec.serviceTlsCert,
  serviceTlsKey: gatewayOptionsSpec.serviceTlsKey,
  logLevel: gatewayOptionsSpec.logLevel,
};

export type HostAgentOptions = ConfigOf<typeof hostAgentOptionsSpec>;
