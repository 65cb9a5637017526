import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./gen/gateway-api.js";

export type { components, operations, paths } from "./gen/gateway-api.js";

/** The gateway's REST API, typed path by path from its OpenAPI document (openapi-fetch). */
export type GatewayClient = Client<paths>;

export interface GatewayClientOptions {
  /** e.g. "http://127.0.0.1:8080" */
  baseUrl: string;
  /** Bearer token (vpl_...); unset: calls go without Authorization (health, metrics). */
  token?: string;
  /** The fetch to use (tests); default: the global one. */
  fetch?: typeof fetch;
}

/**
 * A client of the gateway: `client.GET("/v1/vms/{vm}", { params: { path: { vm } } })` and so on,
 * each path, parameter, body and answer checked against the document the gateway serves.
 */
export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  return createClient<paths>({
    baseUrl: options.baseUrl,
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
