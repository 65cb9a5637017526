export { AccessTokens, ROLES, type Principal, type Role, type TokenEntry } from "./access/access-tokens.js";
export { buildApp } from "./app.js";
export {
  buildGatewayServices,
  resolveGatewayPaths,
  startGateway,
  type GatewayParts,
  type RunningGateway,
} from "./gateway.js";
export { gatewayOptionsSpec, type GatewayOptions } from "./gateway-options.js";
export type { GatewayServices } from "./gateway-services.js";
export { httpStatusOf } from "./http/http-status.js";
export { hostAgentOptionsSpec, type HostAgentOptions } from "./hosts/host-agent-options.js";
export { gatewayOpenApiDocument } from "./openapi-document.js";
